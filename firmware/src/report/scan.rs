//! Finding the sessions under the report's roots and checking each before it is used: a
//! session counts only when it is `COMPLETE`, its `MANIFEST` verifies (every listed file's
//! SHA-256, the video included) and lists its summary and timeline, and its summary parses.
//! Anything else is *rejected*, with the reason, and listed in the report.
//!
//! The scan keeps only a small [`SessionEntry`] per session (path, desk, lesson id, times,
//! the summary's counts), never the timelines: those are read one lesson at a time.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use crate::aggregate::{CategoryCounts, EvidenceFloor};
use crate::record::session::{verify_manifest, COMPLETE, SUMMARY_JSON, TIMELINE_CSV};
use crate::record::summary::{SecondCounts, Summary};

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
    (sessions, rejected)
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
    if !dir.join(COMPLETE).exists() {
        return Err("not COMPLETE (still recording, or not fully copied)".into());
    }
    let listed = verify_manifest(dir).map_err(|e| format!("MANIFEST: {e}"))?;
    for needed in [SUMMARY_JSON, TIMELINE_CSV] {
        if !listed.iter().any(|name| name == needed) {
            return Err(format!("MANIFEST does not list {needed}"));
        }
    }
    let summary = read_summary(dir)?;
    let start = humantime::parse_rfc3339(&summary.lesson_start)
        .map_err(|e| format!("lesson_start {:?}: {e}", summary.lesson_start))?;
    let timeline_seconds = count_timeline_rows(dir)?;
    let timeline_end = start + Duration::from_secs(timeline_seconds);
    let end = match summary.lesson_end.as_deref().map(humantime::parse_rfc3339) {
        Some(Ok(end)) => end.max(timeline_end),
        Some(Err(e)) => return Err(format!("lesson_end: {e}")),
        None => timeline_end,
    };
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
    })
}

/// The session's `summary.json` (schema 2 or 3).
fn read_summary(dir: &Path) -> Result<Summary, String> {
    let path = dir.join(SUMMARY_JSON);
    let text = std::fs::read_to_string(&path).map_err(|e| format!("{SUMMARY_JSON}: {e}"))?;
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

/// Rows of `timeline.csv` (seconds of the lesson): its lines but the header, counted
/// without parsing them; [`for_each_second`] checks every row when the lesson is read.
fn count_timeline_rows(dir: &Path) -> Result<u64, String> {
    let bytes =
        std::fs::read(dir.join(TIMELINE_CSV)).map_err(|e| format!("{TIMELINE_CSV}: {e}"))?;
    let lines = bytes.iter().filter(|&&b| b == b'\n').count() as u64;
    Ok(lines.saturating_sub(1))
}

/// The columns `timeline.csv` has, in order (`Timeline::to_csv`).
const TIMELINE_COLUMNS: [&str; 5] = ["second", "positive", "neutral", "negative", "no_face"];

/// Calls `visit` with each row of the session's `timeline.csv` (one per second of the
/// lesson, checked to be in order), streamed as byte records: a school's year is millions of
/// rows, and neither a row struct per row nor the whole file is needed.
pub fn for_each_second(dir: &Path, mut visit: impl FnMut(SecondCounts)) -> Result<(), String> {
    let path = dir.join(TIMELINE_CSV);
    let mut reader = csv::Reader::from_path(&path).map_err(|e| format!("{TIMELINE_CSV}: {e}"))?;
    let header = reader
        .byte_headers()
        .map_err(|e| format!("{TIMELINE_CSV}: {e}"))?;
    if header
        .iter()
        .ne(TIMELINE_COLUMNS.iter().map(|c| c.as_bytes()))
    {
        return Err(format!(
            "{TIMELINE_CSV}: header is not {}",
            TIMELINE_COLUMNS.join(",")
        ));
    }
    let mut record = csv::ByteRecord::new();
    let mut expected = 0u64;
    while reader
        .read_byte_record(&mut record)
        .map_err(|e| format!("{TIMELINE_CSV}: {e}"))?
    {
        let line = expected + 2;
        let row = parse_row(&record)
            .ok_or_else(|| format!("{TIMELINE_CSV}: line {line}: not five counts"))?;
        if row.second != expected {
            return Err(format!(
                "{TIMELINE_CSV}: second {} out of order (expected {expected})",
                row.second
            ));
        }
        visit(row);
        expected += 1;
    }
    Ok(())
}

fn parse_row(record: &csv::ByteRecord) -> Option<SecondCounts> {
    let field =
        |i: usize| -> Option<u64> { std::str::from_utf8(record.get(i)?).ok()?.parse().ok() };
    if record.len() != TIMELINE_COLUMNS.len() {
        return None;
    }
    Some(SecondCounts {
        second: field(0)?,
        positive: field(1)?,
        neutral: field(2)?,
        negative: field(3)?,
        no_face: field(4)?,
    })
}
