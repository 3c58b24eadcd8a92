//! The lesson's per-second log, `seconds.csv`: one row per whole second of the lesson with
//! its faces per expression, its frames without a face and the model's probabilities summed
//! over its faces (in [`PROBABILITY_UNITS`](crate::aggregate::PROBABILITY_UNITS), what the re-weighted estimate needs), appended
//! and synced to the card as each second completes. Rows without the probability columns (a
//! log written before they were) are still read; their lesson is estimated by the adjusted
//! count. A power cut so loses at most the second in progress: start-up
//! recovery rebuilds the lesson's summaries from the log ([`rebuild_summaries`]) rather than
//! keeping the last periodic summary, which can be `summary_refresh_s` behind.

#![deny(clippy::arithmetic_side_effects, clippy::cast_possible_truncation)]

use std::fs::File;
use std::io::Write as _;
use std::path::Path;
use std::time::Duration;

use ekspresi_common::fsutil::create_private;
use ekspresi_common::Expression;

use super::files::write_summaries;
use super::session::{SessionDir, SECONDS_CSV, SUMMARY_JSON};
use super::summary::{Summary, SummaryInput, Timeline};
use crate::aggregate::{units_fit_faces, Tally};
use crate::limits::{MAX_FRAMES_IN_A_SECOND, MAX_LESSON_SECONDS, MAX_SECONDS_CSV_BYTES};

const HEADER: &str = "second,angry,disgust,fear,happy,sad,surprise,neutral,no_face,\
    p_angry,p_disgust,p_fear,p_happy,p_sad,p_surprise,p_neutral\n";

/// One whole second of the lesson.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SecondRow {
    pub second: u64,
    /// Faces classified as each expression, in label order.
    pub faces: [u64; 7],
    pub no_face: u64,
    /// The model's probabilities summed over the second's faces, in [`PROBABILITY_UNITS`](crate::aggregate::PROBABILITY_UNITS)
    /// (`None` in a row written before they were logged).
    pub probabilities: Option<[u64; 7]>,
}

impl SecondRow {
    fn to_line(&self) -> String {
        let numbers: Vec<String> = self
            .faces
            .iter()
            .chain([&self.no_face])
            .chain(self.probabilities.iter().flatten())
            .map(u64::to_string)
            .collect();
        format!("{},{}\n", self.second, numbers.join(","))
    }

    fn parse(line: &str) -> Option<Self> {
        let numbers: Vec<u64> = line
            .split(',')
            .map(|field| field.trim().parse().ok())
            .collect::<Option<_>>()?;
        let (second, faces, no_face, probabilities) = match numbers.as_slice() {
            [second, faces @ .., no_face] if faces.len() == 7 => (second, faces, no_face, None),
            [second, rest @ ..] if rest.len() == 15 => {
                let (faces, tail) = rest.split_at(7);
                let units: [u64; 7] = tail[1..].try_into().ok()?;
                (second, faces, &tail[0], Some(units))
            }
            _ => return None,
        };
        // A row past the longest lesson, or claiming more frames than a second can hold, is
        // not one the kiosk wrote: reading stops there, as at a torn line.
        let frames = faces
            .iter()
            .chain([no_face])
            .try_fold(0u64, |sum, &n| sum.checked_add(n))?;
        if *second >= MAX_LESSON_SECONDS || frames > MAX_FRAMES_IN_A_SECOND {
            return None;
        }
        // Frames fit (checked above), so the faces' sum cannot overflow.
        let face_count: u64 = faces.iter().sum();
        if probabilities.is_some_and(|units| !units_fit_faces(&units, face_count)) {
            return None;
        }
        Some(Self {
            second: *second,
            faces: faces.try_into().ok()?,
            no_face: *no_face,
            probabilities,
        })
    }
}

/// The log being written.
pub struct SecondLog {
    file: File,
    current: Option<SecondRow>,
}

impl SecondLog {
    /// Starts `seconds.csv` in `session` (header only).
    pub fn create(session: &SessionDir) -> std::io::Result<Self> {
        let mut file = create_private(&session.file(SECONDS_CSV))?;
        file.write_all(HEADER.as_bytes())?;
        file.sync_data()?;
        Ok(Self {
            file,
            current: None,
        })
    }

    /// Counts one analysed frame `second` into the lesson, a face with the model's
    /// probabilities in [`PROBABILITY_UNITS`](crate::aggregate::PROBABILITY_UNITS); the first frame of a later second appends the
    /// finished one.
    pub fn record(
        &mut self,
        second: u64,
        face: Option<(Expression, [u64; 7])>,
    ) -> std::io::Result<()> {
        if self
            .current
            .as_ref()
            .is_some_and(|row| row.second != second)
        {
            self.flush()?;
        }
        let row = self.current.get_or_insert_with(|| SecondRow {
            second,
            probabilities: Some([0; 7]),
            ..SecondRow::default()
        });
        match face {
            Some((expression, units)) => {
                let count = &mut row.faces[expression.label()];
                *count = count.saturating_add(1);
                if let Some(sums) = row.probabilities.as_mut() {
                    for (sum, unit) in sums.iter_mut().zip(units) {
                        *sum = sum.saturating_add(unit);
                    }
                }
            }
            None => row.no_face = row.no_face.saturating_add(1),
        }
        Ok(())
    }

    /// Appends the second in progress (the lesson's last) and syncs it.
    pub fn flush(&mut self) -> std::io::Result<()> {
        if let Some(row) = self.current.take() {
            self.file.write_all(row.to_line().as_bytes())?;
            self.file.sync_data()?;
        }
        Ok(())
    }
}

/// The whole rows of a session's `seconds.csv`: a torn last line (the cut came mid-write), a
/// row out of bounds ([`crate::limits`]) and anything after either are left out; at most
/// [`MAX_SECONDS_CSV_BYTES`] are read.
pub fn read_rows(path: &Path) -> std::io::Result<Vec<SecondRow>> {
    use std::io::Read as _;
    let mut text = String::new();
    File::open(path)?
        .take(MAX_SECONDS_CSV_BYTES)
        .read_to_string(&mut text)?;
    Ok(text
        .split_inclusive('\n')
        .skip(1)
        .map_while(|line| line.strip_suffix('\n').and_then(SecondRow::parse))
        .collect())
}

/// The lesson's counts replayed from its rows. A row keeps only its faces' summed
/// probabilities, so they go with its first face and its other faces add none: the sums,
/// all the estimate reads of a second, come out as the kiosk had them.
pub fn replay(rows: &[SecondRow]) -> (Tally, Timeline) {
    let mut tally = Tally::default();
    let mut timeline = Timeline::default();
    for row in rows {
        let mut units = row.probabilities;
        for expression in Expression::ALL {
            for _ in 0..row.faces[expression.label()] {
                let face_units = units.take().or(row.probabilities.map(|_| [0; 7]));
                tally.record_with_probabilities(expression, row.second, face_units);
                match face_units {
                    Some(face_units) => {
                        timeline.record_face(row.second, Some((expression, face_units)))
                    }
                    None => timeline.record(row.second, Some(expression.category())),
                }
            }
        }
        for _ in 0..row.no_face {
            tally.record_no_face();
            timeline.record(row.second, None);
        }
    }
    (tally, timeline)
}

/// Rebuilds an interrupted session's summaries from its `seconds.csv`, keeping what the last
/// periodic `summary.json` says of the lesson (desk, start, model, floor); the lesson ends
/// after its last whole second (at its start when none was whole). Returns a note for
/// `COMPLETE`, or `None` when there is no log, or it holds less than the last summary (it
/// stopped early, e.g. on a full card).
pub fn rebuild_summaries(session: &SessionDir) -> Result<Option<String>, anyhow::Error> {
    let log = session.file(SECONDS_CSV);
    if !log.exists() {
        return Ok(None);
    }
    let rows = read_rows(&log)?;
    let last: Summary =
        serde_json::from_str(&std::fs::read_to_string(session.file(SUMMARY_JSON))?)?;
    let (tally, timeline) = replay(&rows);
    if tally.frames() < last.frames_analysed {
        return Ok(None);
    }
    let start = humantime::parse_rfc3339(&last.lesson_start)?;
    // No whole second yet: the lesson ended where it began.
    let end_offset = Duration::from_secs(rows.last().map_or(0, |row| row.second.saturating_add(1)));
    // The rows end within limits::MAX_LESSON_SECONDS (read_rows), so this cannot overflow.
    let end = start
        .checked_add(end_offset)
        .ok_or_else(|| anyhow::anyhow!("{SECONDS_CSV}: the lesson ends past any date"))?;
    let end = humantime::format_rfc3339_seconds(end).to_string();
    let input = SummaryInput {
        desk_id: &last.desk_id,
        lesson_id: last.lesson_id.as_deref(),
        lesson_start: &last.lesson_start,
        lesson_end: Some(&end),
        tally: &tally,
        floor: last.evidence.floor,
        frames_dropped: last.frames_dropped,
        frames_skipped: last.frames_skipped,
        model: &last.model,
        model_accuracy: last.model_accuracy,
        calibration: last.calibration.as_ref(),
        video_note: last.video_note.as_deref(),
        times: last.times,
    };
    write_summaries(session, &input, &timeline)?;
    Ok(Some(format!(
        "analysis rebuilt from {SECONDS_CSV}: {} frames over {} s (the last summary had {})",
        tally.frames(),
        end_offset.as_secs(),
        last.frames_analysed
    )))
}

#[cfg(test)]
#[allow(clippy::arithmetic_side_effects, clippy::cast_possible_truncation)] // test inputs
mod tests {
    use super::*;

    #[test]
    fn rows_round_trip_and_a_torn_tail_is_dropped() {
        let dir = std::env::temp_dir().join(format!("ekspresi-seconds-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let session = SessionDir { path: dir.clone() };
        let mut log = SecondLog::create(&session).unwrap();
        let mut live = Tally::default();
        let happy = [100, 0, 0, 9_000, 300, 500, 100];
        let sad = [700, 0, 1_200, 0, 6_100, 0, 2_000];
        for (second, face) in [
            (0, Some((Expression::Happy, happy))),
            (0, None),
            (0, Some((Expression::Happy, happy))),
            (1, Some((Expression::Sad, sad))),
            (3, None),
        ] {
            log.record(second, face).unwrap();
            match face {
                Some((expression, units)) => {
                    live.record_with_probabilities(expression, second, Some(units))
                }
                None => live.record_no_face(),
            }
        }
        // Second 3 is still in progress: not in the file yet.
        let rows = read_rows(&session.file(SECONDS_CSV)).unwrap();
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].faces[Expression::Happy.label()], 2);
        assert_eq!(rows[0].no_face, 1);
        assert_eq!(rows[0].probabilities, Some(happy.map(|u| 2 * u)));
        log.flush().unwrap();
        let rows = read_rows(&session.file(SECONDS_CSV)).unwrap();
        assert_eq!(rows.iter().map(|r| r.second).collect::<Vec<_>>(), [0, 1, 3]);
        // Replayed, the lesson's seconds are the live ones, probabilities and all.
        let (replayed, timeline) = replay(&rows);
        assert_eq!(replayed.seconds(), live.seconds());
        assert_eq!(timeline.seconds()[1].probabilities, Some(sad));
        // A row of the earlier nine-column log is read, without probabilities.
        let old = format!("{HEADER}0,0,0,0,1,0,0,0,0\n");
        std::fs::write(session.file(SECONDS_CSV), old).unwrap();
        assert_eq!(
            read_rows(&session.file(SECONDS_CSV)).unwrap()[0].probabilities,
            None
        );
        std::fs::write(
            session.file(SECONDS_CSV),
            format!(
                "{HEADER}{}",
                rows.iter().map(SecondRow::to_line).collect::<String>()
            ),
        )
        .unwrap();

        // A cut mid-line: the torn row is not counted.
        let mut text = std::fs::read_to_string(session.file(SECONDS_CSV)).unwrap();
        text.push_str("4,0,0,1");
        std::fs::write(session.file(SECONDS_CSV), text).unwrap();
        assert_eq!(read_rows(&session.file(SECONDS_CSV)).unwrap().len(), 3);

        // Rows no lesson can hold end the log there: a second past 12 hours, counts of
        // billions (replaying them would loop for ages), counts that overflow when summed.
        for bad in [
            "43200,0,0,0,1,0,0,0,0",
            "18446744073709551615,0,0,0,1,0,0,0,0",
            "5,0,0,0,18446744073709551615,0,0,0,0",
            "5,0,0,0,9223372036854775808,0,0,0,9223372036854775808",
            "5,0,0,0,1001,0,0,0,0",
            // Probabilities past a unit-sum a face, or with a face and none at all.
            "5,0,0,0,1,0,0,0,0,0,0,0,20000,0,0,0",
            "5,0,0,0,1,0,0,0,0,0,0,0,10000,0,0",
        ] {
            let mut text = HEADER.to_owned();
            text.push_str("0,0,0,0,1,0,0,0,0\n");
            text.push_str(bad);
            text.push_str("\n1,0,0,0,1,0,0,0,0\n");
            std::fs::write(session.file(SECONDS_CSV), text).unwrap();
            let rows = read_rows(&session.file(SECONDS_CSV)).unwrap();
            assert_eq!(rows.len(), 1, "{bad}");
        }

        let (tally, timeline) = replay(&rows);
        assert_eq!(tally.frames(), 5);
        assert_eq!(tally.face_seconds, 2);
        assert_eq!(timeline.seconds().len(), 4);
        let _ = std::fs::remove_dir_all(&dir);
    }

    mod property {
        use super::*;
        use crate::aggregate::{units_fit_faces, PROBABILITY_UNITS};
        use crate::limits::{MAX_FRAMES_IN_A_SECOND, MAX_LESSON_SECONDS};
        use ekspresi_common::estimate::Correction;
        use proptest::prelude::*;

        /// A field as a hostile or damaged log may hold it: small counts, probability units
        /// near a face's unit-sum, the bounds' edges, and u64's.
        fn field() -> impl Strategy<Value = u64> {
            prop_oneof![
                0u64..12,
                0u64..=20_014,
                Just(MAX_LESSON_SECONDS),
                Just(MAX_FRAMES_IN_A_SECOND),
                Just(1 << 63),
                Just(u64::MAX),
                any::<u64>(),
            ]
        }

        /// A row as the kiosk writes it, probabilities summing to at most a unit-sum a face.
        fn kiosk_row() -> impl Strategy<Value = Vec<u64>> {
            (
                0u64..MAX_LESSON_SECONDS,
                proptest::array::uniform7(0u64..4),
                0u64..4,
            )
                .prop_flat_map(|(second, faces, no_face)| {
                    let most = faces.iter().sum::<u64>() * (PROBABILITY_UNITS + 7) / 7;
                    proptest::array::uniform7(0..=most).prop_map(move |units| {
                        let mut fields = vec![second];
                        fields.extend(faces);
                        fields.push(no_face);
                        fields.extend(units);
                        fields
                    })
                })
        }

        /// A row of 9 or 16 fields (the two shapes the kiosk writes), or any other count.
        fn line() -> impl Strategy<Value = String> {
            prop_oneof![
                kiosk_row(),
                proptest::collection::vec(field(), 9),
                proptest::collection::vec(field(), 16),
                proptest::collection::vec(field(), 0..20),
            ]
            .prop_map(|fields| {
                fields
                    .iter()
                    .map(u64::to_string)
                    .collect::<Vec<_>>()
                    .join(",")
            })
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(512))]

            /// Every row the kiosk could write is read back as written.
            #[test]
            fn rows_the_kiosk_writes_are_read(fields in kiosk_row()) {
                let line = fields.iter().map(u64::to_string).collect::<Vec<_>>().join(",");
                let row = SecondRow::parse(&line);
                prop_assert!(row.is_some(), "{}", line);
                prop_assert_eq!(row.map(|r| r.to_line()), Some(format!("{line}\n")));
            }

            /// Whatever a row holds, an accepted one is within a lesson's bounds, its
            /// probabilities fit its faces, it writes back as itself, and the lesson replayed
            /// from accepted rows has a finite estimate by the shipped calibration.
            #[test]
            fn accepted_rows_are_ones_the_kiosk_could_write(lines in proptest::collection::vec(line(), 1..30)) {
                let rows: Vec<SecondRow> = lines.iter().filter_map(|l| SecondRow::parse(l)).collect();
                for row in &rows {
                    prop_assert!(row.second < MAX_LESSON_SECONDS);
                    let faces: u64 = row.faces.iter().sum();
                    prop_assert!(faces + row.no_face <= MAX_FRAMES_IN_A_SECOND);
                    if let Some(units) = &row.probabilities {
                        prop_assert!(units_fit_faces(units, faces));
                    }
                    let reread = SecondRow::parse(row.to_line().trim_end());
                    prop_assert_eq!(reread.as_ref(), Some(row));
                }
                let installed = crate::models::Installed::find().unwrap();
                let calibration = installed.named("lenet5").unwrap().calibration.clone().unwrap();
                let correction = Correction::new(&calibration).unwrap();
                let (tally, _) = replay(&rows);
                if let Some(estimate) = tally.estimate(Some(&correction)) {
                    prop_assert!((estimate.shares.iter().sum::<f64>() - 1.0).abs() < 1e-6);
                    prop_assert!(estimate.shares.iter().chain(&estimate.standard_errors).all(|v| v.is_finite() && *v >= 0.0));
                }
            }
        }
    }
}
