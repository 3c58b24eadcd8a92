//! Finding the sessions under the report's roots and checking each before it is used: a
//! session counts only when it is `COMPLETE`, its `MANIFEST` verifies (every listed file's
//! SHA-256, the video included) and lists its summary and timeline, and its summary parses.
//! Anything else is *rejected*, with the reason, and listed in the report.
//!
//! The scan keeps only a small [`SessionEntry`] per session (path, desk, lesson id, times,
//! the summary's counts), never the timelines: those are read one lesson at a time.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use ekspresi_common::estimate::Correction;

use crate::aggregate::units_fit_faces;
use crate::aggregate::{CategoryCounts, EvidenceFloor};
use crate::record::session::{COMPLETE, SUMMARY_JSON, TIMELINE_CSV};
use crate::record::summary::{
    SecondCounts, Summary, TIMELINE_HEADER, TIMELINE_HEADER_WITH_PROBABILITIES,
};
use crate::record::untrusted::SessionFiles;

/// One verified session: what grouping and the desk's row need from its summary (read
/// once, here); the timeline is read when its lesson is.
#[derive(Debug, Clone)]
pub struct SessionEntry {
    pub path: PathBuf,
    pub desk_id: String,
    pub lesson_id: Option<String>,
    pub start: SystemTime,
    /// The later of `lesson_end` and start + the timeline's length (an interrupted
    /// session has no `lesson_end`).
    pub end: SystemTime,
    pub frames_analysed: u64,
    pub frames_with_face: u64,
    pub face_seconds: u64,
    pub counts: CategoryCounts,
    pub floor: EvidenceFloor,
    /// The correction for the session's model, from its summary's calibration (`None`: the
    /// summary has none, so its shares stay as classified).
    pub correction: Option<Correction>,
    /// The SHA-256 of the session's MANIFEST: the same session reached through two roots
    /// (the stick and the share) has the same one.
    pub fingerprint: [u8; 32],
}

/// A session that cannot be used, and why.
pub type Rejected = (PathBuf, String);

/// Walks every root (to any depth, not following links) and sorts what it finds into
/// verified sessions and rejected ones. The walk only collects folder paths; verifying
/// (hashing every file) and reading summaries runs on every core, a batch at a time.
/// `progress` hears the count of sessions read.
pub fn scan(
    roots: &[PathBuf],
    mut progress: impl FnMut(usize),
) -> (Vec<SessionEntry>, Vec<Rejected>) {
    use rayon::prelude::*;
    let (dirs, mut rejected) = session_dirs(roots);
    let mut sessions = Vec::with_capacity(dirs.len());
    let mut read = 0;
    for batch in dirs.chunks(256) {
        let entries: Vec<Result<SessionEntry, String>> =
            batch.par_iter().map(|dir| read_entry(dir)).collect();
        for (dir, entry) in batch.iter().zip(entries) {
            match entry {
                Ok(session) => sessions.push(session),
                Err(reason) => rejected.push((dir.clone(), reason)),
            }
        }
        read += batch.len();
        progress(read);
    }
    let (sessions, duplicates) = counted_once(sessions);
    rejected.extend(duplicates);
    (sessions, rejected)
}

/// Each session counted once however many roots reach it (the stick and the share, or a
/// copy beside the original): the first found is kept, and a later one with the same
/// MANIFEST, or the same desk and start, is rejected naming the one counted.
fn counted_once(sessions: Vec<SessionEntry>) -> (Vec<SessionEntry>, Vec<Rejected>) {
    use std::collections::HashMap;
    // Keys point into `kept` (no second copy of every path and id).
    let mut by_fingerprint: HashMap<[u8; 32], usize> = HashMap::new();
    let mut by_start: HashMap<(u64, SystemTime), Vec<usize>> = HashMap::new();
    let mut kept: Vec<SessionEntry> = Vec::with_capacity(sessions.len());
    let mut rejected = Vec::new();
    for session in sessions {
        let start_key = (desk_hash(&session.desk_id), session.start);
        let same_start = by_start.get(&start_key).and_then(|indices| {
            indices
                .iter()
                .copied()
                .find(|&i| kept[i].desk_id == session.desk_id)
        });
        if let Some(counted) = by_fingerprint
            .get(&session.fingerprint)
            .copied()
            .or(same_start)
        {
            let reason = format!(
                "the same session as {} (counted once)",
                kept[counted].path.display()
            );
            rejected.push((session.path, reason));
            continue;
        }
        by_fingerprint.insert(session.fingerprint, kept.len());
        by_start.entry(start_key).or_default().push(kept.len());
        kept.push(session);
    }
    (kept, rejected)
}

fn desk_hash(desk: &str) -> u64 {
    use std::hash::{Hash as _, Hasher as _};
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    desk.hash(&mut hasher);
    hasher.finish()
}

/// Every session folder under the roots, in walk order, and the paths that could not be
/// walked.
fn session_dirs(roots: &[PathBuf]) -> (Vec<PathBuf>, Vec<Rejected>) {
    let mut dirs = Vec::new();
    let mut rejected = Vec::new();
    for root in roots {
        if !root.is_dir() {
            rejected.push((root.clone(), "not a folder".to_owned()));
            continue;
        }
        let walk = walkdir::WalkDir::new(root)
            .sort_by_file_name()
            .into_iter()
            .filter_entry(|entry| {
                // rsync's partial files and temporary folders are never sessions.
                !entry.file_name().to_string_lossy().starts_with(".rsync")
            });
        for entry in walk {
            match entry {
                Ok(entry) if entry.file_type().is_dir() && is_session_dir(entry.path()) => {
                    dirs.push(entry.into_path());
                }
                // A link in place of a desk or session folder is listed, never followed (a
                // link among a session's files is that session's problem, found when it is
                // read).
                Ok(entry)
                    if entry.path_is_symlink()
                        && !entry.path().parent().is_some_and(is_session_dir) =>
                {
                    rejected.push((entry.into_path(), "a symbolic link: not followed".into()));
                }
                Ok(_) => {}
                Err(error) => {
                    let path = error
                        .path()
                        .map(Path::to_owned)
                        .unwrap_or_else(|| root.clone());
                    rejected.push((path, error.to_string()));
                }
            }
        }
    }
    (dirs, rejected)
}

/// A folder the kiosk wrote as a session: it has a summary or a completion marker (an
/// unfinished or half-copied one is rejected, not ignored).
fn is_session_dir(dir: &Path) -> bool {
    dir.join(COMPLETE).exists() || dir.join(SUMMARY_JSON).exists()
}

fn read_entry(dir: &Path) -> Result<SessionEntry, String> {
    let files = SessionFiles::open(dir).map_err(|e| e.to_string())?;
    if !files.has(COMPLETE) {
        return Err("not COMPLETE (still recording, or not fully copied)".into());
    }
    let verified = files.verify_manifest().map_err(|e| e.to_string())?;
    for needed in [SUMMARY_JSON, TIMELINE_CSV] {
        if !verified.names.iter().any(|name| name == needed) {
            return Err(format!("MANIFEST does not list {needed}"));
        }
    }
    let summary = read_summary(&files)?;
    check_identity(&summary, dir)?;
    check_counts(&summary)?;
    let correction = summary
        .calibration
        .as_ref()
        .map(Correction::new)
        .transpose()
        .map_err(|e| format!("calibration: {e}"))?;
    let start = humantime::parse_rfc3339(&summary.lesson_start)
        .map_err(|e| format!("lesson_start {:?}: {e}", summary.lesson_start))?;
    let timeline_seconds = check_timeline(&files, &summary)?;
    let timeline_end = start
        .checked_add(Duration::from_secs(timeline_seconds))
        .ok_or("lesson_start is past any date")?;
    let end = match summary.lesson_end.as_deref().map(humantime::parse_rfc3339) {
        Some(Ok(end)) => end.max(timeline_end),
        Some(Err(e)) => return Err(format!("lesson_end: {e}")),
        None => timeline_end,
    };
    let span = end.duration_since(start).unwrap_or_default();
    if span > MAX_SPAN {
        return Err(format!(
            "the lesson spans {} s, longer than a lesson can be ({} s)",
            span.as_secs(),
            MAX_SPAN.as_secs()
        ));
    }
    Ok(SessionEntry {
        path: dir.to_owned(),
        desk_id: summary.desk_id,
        lesson_id: summary.lesson_id,
        start,
        end,
        frames_analysed: summary.frames_analysed,
        frames_with_face: summary.frames_with_face,
        face_seconds: summary.evidence.face_seconds,
        counts: summary.reactions.counts,
        floor: summary.evidence.floor,
        correction,
        fingerprint: verified.digest,
    })
}

/// The longest span a session may claim: a lesson's bound, with a minute for the last
/// second's rounding and a slow close.
const MAX_SPAN: Duration = Duration::from_secs(crate::limits::MAX_LESSON_SECONDS + 60);

/// An id a desk chose (desk, lesson), which becomes a folder, a link and a CSV cell: the
/// config's own rule ([`crate::config::is_safe_name`]: 1 to 64 of `A–Z a–z 0–9 _ -`,
/// starting with a letter or digit), so every id a kiosk accepts is one the report takes.
pub fn valid_id(id: &str) -> bool {
    crate::config::is_safe_name(id)
}

/// The desk and lesson ids are plain ids, and the desk is the one whose folder the session
/// was found in (a session uploaded under `desk-x/` cannot speak for `desk-h1`).
fn check_identity(summary: &Summary, dir: &Path) -> Result<(), String> {
    if !valid_id(&summary.desk_id) {
        return Err(format!(
            "desk_id {:?} is not a desk id (1-64 of A-Z a-z 0-9 _ -)",
            summary.desk_id
        ));
    }
    if let Some(lesson) = summary.lesson_id.as_deref().filter(|l| !valid_id(l)) {
        return Err(format!(
            "lesson_id {lesson:?} is not a lesson id (1-64 of A-Z a-z 0-9 _ -)"
        ));
    }
    let folder = dir
        .parent()
        .and_then(Path::file_name)
        .map(|name| name.to_string_lossy());
    if folder.as_deref() != Some(summary.desk_id.as_str()) {
        return Err(format!(
            "desk_id {:?} is not the desk folder {:?} the session is in",
            summary.desk_id,
            folder.unwrap_or_default()
        ));
    }
    Ok(())
}

/// The summary's counts agree with each other, without overflow: reactions and expressions
/// each sum to the frames with a face, and those with the frames without one to the frames
/// analysed.
fn check_counts(summary: &Summary) -> Result<(), String> {
    let c = &summary.reactions.counts;
    let reactions = checked_sum([c.positive, c.neutral, c.negative])?;
    let expressions = checked_sum(summary.expressions.iter().map(|e| e.frames))?;
    let frames = summary
        .frames_with_face
        .checked_add(summary.frames_without_face)
        .ok_or("counts overflow")?;
    if reactions != summary.frames_with_face
        || expressions != summary.frames_with_face
        || frames != summary.frames_analysed
    {
        return Err(format!(
            "counts disagree: reactions {reactions}, expressions {expressions}, frames with a \
             face {}, frames analysed {} ({frames} with and without a face)",
            summary.frames_with_face, summary.frames_analysed
        ));
    }
    Ok(())
}

fn checked_sum(values: impl IntoIterator<Item = u64>) -> Result<u64, String> {
    values
        .into_iter()
        .try_fold(0u64, u64::checked_add)
        .ok_or_else(|| "counts overflow".to_owned())
}

/// The session's `summary.json` (schema 2 or later), at most its size limit.
fn read_summary(files: &SessionFiles) -> Result<Summary, String> {
    let text = files.read_text(SUMMARY_JSON).map_err(|e| e.to_string())?;
    let summary: Summary =
        serde_json::from_str(&text).map_err(|e| format!("{SUMMARY_JSON}: {e}"))?;
    if !(2..=crate::record::summary::SCHEMA_VERSION).contains(&summary.schema_version) {
        return Err(format!(
            "{SUMMARY_JSON}: schema_version {} is not one this report reads",
            summary.schema_version
        ));
    }
    Ok(summary)
}

/// Reads the whole timeline once, before the session counts: its rows in order, at most a
/// lesson's seconds, summing to the summary's counts (a summary claiming other counts than
/// its own timeline is not believed, and a session rejected here never shapes a lesson's
/// times). Returns its rows (seconds of the lesson).
fn check_timeline(files: &SessionFiles, summary: &Summary) -> Result<u64, String> {
    let reader = files.reader(TIMELINE_CSV).map_err(|e| e.to_string())?;
    let mut rows = 0u64;
    let mut sums = [0u64; 4];
    for_each_row(reader, |second| {
        rows += 1;
        if rows > crate::limits::MAX_LESSON_SECONDS {
            return Err(format!(
                "{TIMELINE_CSV} has over {} rows: longer than a lesson can be",
                crate::limits::MAX_LESSON_SECONDS
            ));
        }
        let row = [
            second.positive,
            second.neutral,
            second.negative,
            second.no_face,
        ];
        for (sum, count) in sums.iter_mut().zip(row) {
            *sum = sum.saturating_add(count);
        }
        Ok(())
    })?;
    let c = &summary.reactions.counts;
    let without_face = summary.frames_without_face;
    if sums != [c.positive, c.neutral, c.negative, without_face] {
        let [positive, neutral, negative, no_face] = sums;
        return Err(format!(
            "{TIMELINE_CSV} disagrees with {SUMMARY_JSON}: it sums to \
             {positive}/{neutral}/{negative} frames (positive/neutral/negative) and {no_face} \
             without a face, the summary says {}/{}/{} and {without_face}",
            c.positive, c.neutral, c.negative
        ));
    }
    Ok(rows)
}

/// Calls `visit` with each row of the session's `timeline.csv` (one per second of the
/// lesson, checked to be in order), streamed line by line: a school's year is millions of
/// rows, and neither a row struct per row nor the whole file is needed.
pub fn for_each_second(dir: &Path, mut visit: impl FnMut(SecondCounts)) -> Result<(), String> {
    let file = SessionFiles::open(dir)
        .and_then(|files| files.reader(TIMELINE_CSV))
        .map_err(|e| e.to_string())?;
    for_each_row(file, |row| {
        visit(row);
        Ok(())
    })
}

/// Calls `visit` with each row of a `timeline.csv` stream, checked to be in order; stops at
/// the first error, `visit`'s own included.
///
/// A strict reader of the kiosk's own format (five unsigned decimal counts a line, no
/// quoting) rather than the `csv` crate's general one: a year of a school's timelines is
/// tens of millions of rows, read twice (checked at the scan, summed per lesson), and the
/// general reader cost about 130 ns a row, more than the rest of the report together.
fn for_each_row(
    file: impl std::io::Read,
    mut visit: impl FnMut(SecondCounts) -> Result<(), String>,
) -> Result<(), String> {
    use std::io::BufRead as _;
    let mut reader = std::io::BufReader::with_capacity(64 * 1024, file);
    let mut line = Vec::with_capacity(64);
    let read_line = |reader: &mut std::io::BufReader<_>, line: &mut Vec<u8>| {
        line.clear();
        reader
            .read_until(b'\n', line)
            .map_err(|e| format!("{TIMELINE_CSV}: {e}"))
    };
    read_line(&mut reader, &mut line)?;
    let header = trim_newline(&line);
    let with_probabilities = header == TIMELINE_HEADER_WITH_PROBABILITIES.as_bytes();
    if !with_probabilities && header != TIMELINE_HEADER.as_bytes() {
        return Err(format!(
            "{TIMELINE_CSV}: header is neither {TIMELINE_HEADER} nor {TIMELINE_HEADER_WITH_PROBABILITIES}"
        ));
    }
    let mut expected = 0u64;
    let mut row_of = |line: &[u8]| -> Result<(), String> {
        let line_number = expected + 2;
        let row = parse_row(trim_newline(line), with_probabilities).ok_or_else(|| {
            format!("{TIMELINE_CSV}: line {line_number}: not the header's counts")
        })?;
        if row.second != expected {
            return Err(format!(
                "{TIMELINE_CSV}: second {} out of order (expected {expected})",
                row.second
            ));
        }
        visit(row)?;
        expected += 1;
        Ok(())
    };
    loop {
        // A line whole in the reader's buffer is parsed there; one split across two fills
        // is copied out first.
        let buffer = reader
            .fill_buf()
            .map_err(|e| format!("{TIMELINE_CSV}: {e}"))?;
        if buffer.is_empty() {
            return Ok(());
        }
        let consumed = match buffer.iter().position(|&b| b == b'\n') {
            Some(end) => {
                row_of(&buffer[..=end])?;
                end + 1
            }
            None => {
                read_line(&mut reader, &mut line)?;
                row_of(&line)?;
                0
            }
        };
        reader.consume(consumed);
    }
}

fn trim_newline(line: &[u8]) -> &[u8] {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    line.strip_suffix(b"\r").unwrap_or(line)
}

/// Five comma-separated counts, each 1 to 20 ASCII digits that fit a `u64`; then, when
/// `with_probabilities`, seven more: the summed probabilities, at most a unit-sum per face.
fn parse_row(line: &[u8], with_probabilities: bool) -> Option<SecondCounts> {
    let mut fields = [0u64; 12];
    let fields = &mut fields[..if with_probabilities { 12 } else { 5 }];
    parse_fields(line, fields)?;
    let mut row = SecondCounts {
        second: fields[0],
        positive: fields[1],
        neutral: fields[2],
        negative: fields[3],
        no_face: fields[4],
        probabilities: None,
    };
    if let Some(units) = fields.get(5..12) {
        let units: [u64; 7] = units.try_into().ok()?;
        let faces = row
            .categories()
            .iter()
            .try_fold(0u64, |sum, &n| sum.checked_add(n))?;
        if !units_fit_faces(&units, faces) {
            return None;
        }
        row.probabilities = Some(units);
    }
    Some(row)
}

/// Fills `fields` from the comma-separated decimal numbers of `line` in one pass over its
/// bytes (a split iterator and a parse per field cost twice as much, on tens of millions
/// of rows); `None` unless there are exactly as many, each 1 to 20 digits fitting a `u64`.
fn parse_fields(line: &[u8], fields: &mut [u64]) -> Option<()> {
    let (mut index, mut value, mut digits) = (0usize, 0u64, 0u8);
    for &byte in line {
        if byte == b',' {
            if digits == 0 {
                return None;
            }
            *fields.get_mut(index)? = value;
            (index, value, digits) = (index.checked_add(1)?, 0, 0);
        } else {
            let digit = byte.wrapping_sub(b'0');
            if digit > 9 || digits == 20 {
                return None;
            }
            value = value.checked_mul(10)?.checked_add(u64::from(digit))?;
            digits += 1;
        }
    }
    if digits == 0 {
        return None;
    }
    *fields.get_mut(index)? = value;
    (index.checked_add(1)? == fields.len()).then_some(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timeline_rows_are_five_plain_counts_or_twelve() {
        let row = parse_row(b"7,1,2,3,18446744073709551615", false).unwrap();
        assert_eq!((row.second, row.no_face), (7, u64::MAX));
        // Twenty digits with leading zeros are a number like any other.
        let row = parse_row(b"00000000000000000007,1,2,3,09999999999999999999", false).unwrap();
        assert_eq!((row.second, row.no_face), (7, 9_999_999_999_999_999_999));
        // With probabilities: seven more, summing to at most a unit-sum a face (two faces).
        let row = parse_row(b"7,1,1,0,0,0,0,0,10000,0,0,10000", true).unwrap();
        assert_eq!(row.probabilities, Some([0, 0, 0, 10000, 0, 0, 10000]));
        let counts_only: &[&[u8]] = &[
            b"7,1,2,3,18446744073709551616",
            b"7,1,2,3,99999999999999999999",
            b"7,1,2,3,000000000000000000001",
            b"7,1,2,3,4,",
            b",7,1,2,3",
            b"7,1,2,3,1844674407370955161x",
            b"7,1,2,3",
            b"7,1,2,3,4,5",
            b"7,-1,2,3,4",
            b"7,+1,2,3,4",
            b"7, 1,2,3,4",
            b"7,,2,3,4",
            b"",
            b"7,1,2,3,4e3",
        ];
        let with_probabilities: &[&[u8]] = &[
            b"7,1,1,0,0",
            b"7,1,1,0,0,0,0,0,10000,0,0,10000,1",
            b"7,1,1,0,0,0,0,0,20000,0,0,10000",
            b"7,0,0,0,3,0,0,0,1,0,0,0",
            b"7,1,1,0,0,0,0,0,18446744073709551615,0,0,1",
        ];
        for (bad_rows, probabilities) in [(counts_only, false), (with_probabilities, true)] {
            for bad in bad_rows {
                let shown = String::from_utf8_lossy(bad);
                assert!(parse_row(bad, probabilities).is_none(), "{shown}");
            }
        }
        let mut seen = Vec::new();
        let text = format!("{TIMELINE_HEADER}\r\n0,1,0,0,0\r\n1,0,1,0,0");
        for_each_row(text.as_bytes(), |row| {
            seen.push(row.second);
            Ok(())
        })
        .unwrap();
        assert_eq!(
            seen,
            [0, 1],
            "CRLF lines and a last line without its newline"
        );
        assert!(for_each_row(&b"second,positive\n"[..], |_| Ok(())).is_err());
    }

    /// A reader handing out at most 7 bytes a read: nearly every line is split between two
    /// fills of the row reader's buffer.
    struct Trickle<'a>(&'a [u8]);

    impl std::io::Read for Trickle<'_> {
        fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
            let n = out.len().min(7).min(self.0.len());
            out[..n].copy_from_slice(&self.0[..n]);
            self.0 = &self.0[n..];
            Ok(n)
        }
    }

    #[test]
    fn rows_across_buffer_fills_are_read_whole() {
        // 20,000 rows (about 600 kB): lines straddle the 64 kB buffer too.
        let mut text = format!("{TIMELINE_HEADER_WITH_PROBABILITIES}\n");
        for second in 0..20_000u64 {
            let units = second % 10_001;
            text.push_str(&format!(
                "{second},1,0,0,{},0,0,0,{units},0,0,0\n",
                second % 3
            ));
        }
        for whole in [true, false] {
            let mut seen = Vec::new();
            let visit = |row: SecondCounts| {
                seen.push((row.second, row.no_face, row.probabilities.map(|u| u[3])));
                Ok(())
            };
            if whole {
                for_each_row(text.as_bytes(), visit).unwrap();
            } else {
                for_each_row(Trickle(text.as_bytes()), visit).unwrap();
            }
            assert_eq!(seen.len(), 20_000);
            for (second, no_face, units) in seen {
                assert_eq!((no_face, units), (second % 3, Some(second % 10_001)));
            }
        }
    }
    use crate::aggregate::{EvidenceFloor, Tally};
    use crate::record::summary::{LessonTimes, SummaryInput};
    use ekspresi_common::Expression;

    fn honest(desk: &str) -> Summary {
        let mut tally = Tally::default();
        for (second, e) in [
            (0, Expression::Happy),
            (1, Expression::Sad),
            (2, Expression::Neutral),
        ] {
            tally.record(e, second);
        }
        tally.record_no_face();
        Summary::build(&SummaryInput {
            desk_id: desk,
            lesson_id: Some("physics-3b"),
            lesson_start: "2026-11-02T09:00:00Z",
            lesson_end: Some("2026-11-02T09:45:00Z"),
            tally: &tally,
            floor: EvidenceFloor::default(),
            frames_dropped: 0,
            frames_skipped: 0,
            model: "lenet5-int8.onnx",
            model_accuracy: None,
            calibration: None,
            video_note: None,
            times: LessonTimes::Camera,
        })
    }

    #[test]
    fn ids_are_plain_and_the_desk_is_its_folder() {
        for good in ["desk-1", "desk-h1", "Physics_3B_2026", "7"] {
            assert!(valid_id(good), "{good}");
        }
        let long = "d".repeat(65);
        for bad in [
            "",
            "../../x",
            "/etc",
            ".hidden",
            "-rf",
            "a/b",
            "a b",
            "x\u{1b}]0;t\u{7}",
            "=1+1",
            "a#b",
            "a?b",
            "a%2e",
            "é",
            long.as_str(),
            "a\0b",
        ] {
            assert!(!valid_id(bad), "{bad:?}");
        }
        let dir = Path::new("/share/desk-1/2026-11-02T09-00-00Z");
        assert!(check_identity(&honest("desk-1"), dir).is_ok());
        let error = check_identity(&honest("desk-h1"), dir).unwrap_err();
        assert!(error.contains("not the desk folder"), "{error}");
        let mut path_id = honest("desk-1");
        path_id.lesson_id = Some("../../x".into());
        assert!(check_identity(&path_id, dir)
            .unwrap_err()
            .contains("lesson_id"));
    }

    #[test]
    fn counts_must_agree_and_never_overflow() {
        assert!(check_counts(&honest("desk-1")).is_ok());
        // A million faces in a lesson of four frames.
        let mut inflated = honest("desk-1");
        inflated.reactions.counts.negative = 1_000_000;
        assert!(check_counts(&inflated).unwrap_err().contains("disagree"));
        // Counts near 2^64 that wrap to the right total.
        let mut wrapping = honest("desk-1");
        wrapping.reactions.counts.positive = u64::MAX;
        wrapping.reactions.counts.neutral = 2;
        assert!(check_counts(&wrapping).unwrap_err().contains("overflow"));
        let mut frames = honest("desk-1");
        frames.frames_analysed = 6_000;
        assert!(check_counts(&frames).is_err());
    }

    mod property {
        use super::*;
        use proptest::prelude::*;

        /// A field of a damaged or hostile timeline: digits around the bounds, or any bytes.
        fn field() -> impl Strategy<Value = String> {
            prop_oneof![
                (0u64..12).prop_map(|v| v.to_string()),
                (0u64..=20_014).prop_map(|v| v.to_string()),
                any::<u64>().prop_map(|v| v.to_string()),
                Just("18446744073709551616".to_owned()),
                Just("000000000000000000001".to_owned()),
                "[0-9+ -]{0,3}",
            ]
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(1024))]

            /// Whatever a timeline row holds, an accepted one has 5 or 12 numbers as written
            /// and its probabilities fit its faces.
            #[test]
            fn accepted_timeline_rows_are_what_they_say(fields in proptest::collection::vec(field(), 0..15), with_probabilities: bool) {
                let line = fields.join(",");
                if let Some(row) = parse_row(line.as_bytes(), with_probabilities) {
                    prop_assert_eq!(fields.len(), if with_probabilities { 12 } else { 5 });
                    let numbers: Vec<u64> = fields.iter().map(|f| f.parse().unwrap()).collect();
                    prop_assert_eq!(&numbers[..5], &[row.second, row.positive, row.neutral, row.negative, row.no_face]);
                    prop_assert_eq!(row.probabilities.is_some(), with_probabilities);
                    if let Some(units) = row.probabilities {
                        prop_assert_eq!(&numbers[5..], &units);
                        let faces = row.categories().iter().sum::<u64>();
                        prop_assert!(units_fit_faces(&units, faces));
                    }
                }
            }
        }
    }
}
