//! The lesson summary in three forms: `summary.txt` for the teacher, `summary.json` for
//! machines (same data, with a `schema_version`), and a per-second `timeline.csv` with its
//! `timeline.png` chart. All are written atomically (temporary file, fsync, rename) and
//! refreshed during the lesson, so a power cut leaves a summary no older than the refresh
//! period.

use std::fmt::Write as _;

use ekspresi_common::Expression;
use serde::{Deserialize, Serialize};

use ekspresi_common::estimate::{Calibration, Correction, Estimate, Method};

use crate::aggregate::{CategoryCounts, Evidence, EvidenceFloor, Impression, Tally};

/// Version of `summary.json`'s layout (2: `impression` may be `insufficient`, never null,
/// and `evidence` says what it rests on; 3: `lesson_id`, null unless the config names the
/// lesson; 4: `frames_skipped`, 0 when absent; 5: `model_accuracy`, null when absent; 6:
/// `times`, what the lesson's start and end are read from, `camera` when absent; 7:
/// `estimated`, the shares corrected for the model's confusions with their intervals, on
/// which `impression` is judged — before 7 it was judged on the classified counts; 8:
/// `estimated.method` may be `calibrated-em` and `calibration.probabilities` holds the
/// model's probability scaling, with `timeline.csv` carrying each second's summed
/// probabilities). Readers take 2 to 8.
pub const SCHEMA_VERSION: u32 = 8;

/// What a summary's `lesson_start` and `lesson_end` are.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LessonTimes {
    /// A live camera's lesson: the kiosk's clock when it started and ended.
    #[default]
    Camera,
    /// A replayed recording that says when it was made: its creation time plus the frames'
    /// own times.
    Recording,
    /// A replayed recording that does not say when it was made: the start is when it was
    /// replayed (not when the lesson was), the span is the recording's own.
    RecordingStartUnknown,
}

/// Reactions seen in one second of the lesson.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SecondCounts {
    pub second: u64,
    pub positive: u64,
    pub neutral: u64,
    pub negative: u64,
    pub no_face: u64,
    /// The model's probabilities summed over the second's faces, in
    /// [`crate::aggregate::PROBABILITY_UNITS`]; `None` when a face came without them (a
    /// timeline written before they were logged).
    pub probabilities: Option<[u64; 7]>,
}

impl SecondCounts {
    /// Positive, neutral and negative faces.
    pub fn categories(&self) -> [u64; 3] {
        [self.positive, self.neutral, self.negative]
    }
}

/// `timeline.csv`'s header, and the same with the summed probabilities (in ten-thousandths)
/// that the re-weighted estimate needs.
pub const TIMELINE_HEADER: &str = "second,positive,neutral,negative,no_face";
pub const TIMELINE_HEADER_WITH_PROBABILITIES: &str = "second,positive,neutral,negative,no_face,\
    p_angry,p_disgust,p_fear,p_happy,p_sad,p_surprise,p_neutral";

/// Per-second reaction counts over the lesson.
#[derive(Debug, Clone, Default)]
pub struct Timeline {
    seconds: Vec<SecondCounts>,
}

impl Timeline {
    /// Counts one frame `second` into the lesson, a face by its category only. A lesson
    /// never lasts longer than [`crate::limits::MAX_LESSON`] (the kiosk opens the next
    /// one), so the table is sized by that bound; a later second is counted in the last row
    /// rather than growing it.
    pub fn record(&mut self, second: u64, category: Option<ekspresi_common::Category>) {
        self.count(second, category, None);
    }

    /// Counts one frame `second` into the lesson, a face with the model's probabilities in
    /// [`crate::aggregate::PROBABILITY_UNITS`].
    pub fn record_face(&mut self, second: u64, face: Option<(Expression, [u64; 7])>) {
        match face {
            Some((expression, units)) => {
                self.count(second, Some(expression.category()), Some(units))
            }
            None => self.count(second, None, None),
        }
    }

    fn count(
        &mut self,
        second: u64,
        category: Option<ekspresi_common::Category>,
        units: Option<[u64; 7]>,
    ) {
        let second = second.min(crate::limits::MAX_LESSON_SECONDS - 1);
        while self.seconds.len() as u64 <= second {
            let next = self.seconds.len() as u64;
            self.seconds.push(SecondCounts {
                second: next,
                probabilities: Some([0; 7]),
                ..Default::default()
            });
        }
        let slot = &mut self.seconds[second as usize];
        let Some(category) = category else {
            slot.no_face += 1;
            return;
        };
        match category {
            ekspresi_common::Category::Positive => slot.positive += 1,
            ekspresi_common::Category::Neutral => slot.neutral += 1,
            ekspresi_common::Category::Negative => slot.negative += 1,
        }
        slot.probabilities = slot
            .probabilities
            .zip(units)
            .map(|(sum, face)| std::array::from_fn(|k| sum[k].saturating_add(face[k])));
    }

    pub fn seconds(&self) -> &[SecondCounts] {
        &self.seconds
    }

    /// The CSV: with the probability columns when every second has them, else without.
    pub fn to_csv(&self) -> String {
        let with_probabilities = self.seconds.iter().all(|s| s.probabilities.is_some());
        let header = if with_probabilities {
            TIMELINE_HEADER_WITH_PROBABILITIES
        } else {
            TIMELINE_HEADER
        };
        let mut csv = format!("{header}\n");
        for s in &self.seconds {
            let _ = write!(
                csv,
                "{},{},{},{},{}",
                s.second, s.positive, s.neutral, s.negative, s.no_face
            );
            if let Some(units) = s.probabilities.filter(|_| with_probabilities) {
                for unit in units {
                    let _ = write!(csv, ",{unit}");
                }
            }
            csv.push('\n');
        }
        csv
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ExpressionShare {
    pub expression: Expression,
    pub frames: u64,
    pub percent: f64,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Reactions {
    pub counts: CategoryCounts,
    pub positive_percent: f64,
    pub neutral_percent: f64,
    pub negative_percent: f64,
}

/// A 90 % interval per category, in percent.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq)]
pub struct Intervals {
    pub positive: [f64; 2],
    pub neutral: [f64; 2],
    pub negative: [f64; 2],
}

/// The lesson's shares as the estimator gives them ([`Tally::estimate`]): what the verdict
/// is judged on.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Estimated {
    pub positive_percent: f64,
    pub neutral_percent: f64,
    pub negative_percent: f64,
    pub interval_90: Intervals,
    pub method: Method,
    /// The 90 % interval of positive + neutral − negative contains 0: within the model's
    /// error the verdict could go either way.
    pub verdict_within_error: bool,
}

impl Estimated {
    pub fn new(estimate: &Estimate) -> Self {
        let percent = |k: usize| 100.0 * estimate.shares[k];
        let interval = |k: usize| estimate.interval_90(k).map(|v| 100.0 * v);
        Self {
            positive_percent: percent(0),
            neutral_percent: percent(1),
            negative_percent: percent(2),
            interval_90: Intervals {
                positive: interval(0),
                neutral: interval(1),
                negative: interval(2),
            },
            method: estimate.method,
            verdict_within_error: estimate.verdict_within_error(),
        }
    }

    /// (share, interval) per category, positive first.
    pub fn rows(&self) -> [(&'static str, f64, [f64; 2]); 3] {
        [
            ("positive", self.positive_percent, self.interval_90.positive),
            ("neutral", self.neutral_percent, self.interval_90.neutral),
            ("negative", self.negative_percent, self.interval_90.negative),
        ]
    }
}

/// `summary.json`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Summary {
    pub schema_version: u32,
    pub desk_id: String,
    /// The config's `lesson_id` (schema 3; absent in schema 2).
    #[serde(default)]
    pub lesson_id: Option<String>,
    pub lesson_start: String,
    /// `None` while the lesson runs (or if it ended by a power cut).
    pub lesson_end: Option<String>,
    pub frames_analysed: u64,
    pub frames_with_face: u64,
    pub frames_without_face: u64,
    /// Frames the capture could not keep up with (live sources only).
    pub frames_dropped: u64,
    /// Frames recorded but not analysed because newer ones were waiting (a live camera
    /// faster than the analysis; the newest frame is analysed). Absent before schema 4.
    #[serde(default)]
    pub frames_skipped: u64,
    /// Faces per expression as the model classified them.
    pub expressions: Vec<ExpressionShare>,
    /// Reactions as the model classified them (raw counts).
    pub reactions: Reactions,
    /// The shares estimated from `reactions`' seconds, corrected for the model's known
    /// confusions, with 90 % intervals; `None` before the first face. Absent before
    /// schema 7.
    #[serde(default)]
    pub estimated: Option<Estimated>,
    /// `good` when the estimated positive % + neutral % > negative % (a tie is bad);
    /// `insufficient` below the evidence floor ([`crate::aggregate::Tally::impression`],
    /// the one rule).
    pub impression: Impression,
    /// The face evidence the impression rests on, and the floor it was held against.
    pub evidence: Evidence,
    pub model: String,
    /// The model's accuracy on unseen faces (FER-2013 `PublicTest`, int8) as `models.json`
    /// states it; `None` for a model the manifest does not list. Absent before schema 5.
    #[serde(default)]
    pub model_accuracy: Option<f64>,
    /// The model's confusions and probability scaling `estimated` corrects with
    /// (`models.json`'s); kept here so that recovery and the class report re-estimate from
    /// the lesson's own files. Absent for a model without one, and before schema 7; without
    /// `probabilities` before schema 8.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub calibration: Option<Calibration>,
    /// Why the video stopped early, if it did (e.g. storage full).
    pub video_note: Option<String>,
    /// What `lesson_start` and `lesson_end` are read from. Absent before schema 6.
    #[serde(default)]
    pub times: LessonTimes,
}

/// What the summary is built from.
pub struct SummaryInput<'a> {
    pub desk_id: &'a str,
    pub lesson_id: Option<&'a str>,
    pub lesson_start: &'a str,
    pub lesson_end: Option<&'a str>,
    pub tally: &'a Tally,
    pub floor: EvidenceFloor,
    pub frames_dropped: u64,
    pub frames_skipped: u64,
    pub model: &'a str,
    pub model_accuracy: Option<f64>,
    /// The model's confusions, when `models.json` has them for it.
    pub calibration: Option<&'a Calibration>,
    pub video_note: Option<&'a str>,
    pub times: LessonTimes,
}

impl Summary {
    pub fn build(input: &SummaryInput<'_>) -> Summary {
        let tally = input.tally;
        // A calibration that cannot correct (only from a damaged summary being rebuilt)
        // leaves the classified shares, said so by the method.
        let correction = input.calibration.and_then(|c| Correction::new(c).ok());
        let calibration = input.calibration.filter(|_| correction.is_some());
        let percentages = tally.percentages();
        let counts = tally.category_counts();
        let (positive_percent, neutral_percent, negative_percent) = if counts.total() == 0 {
            (0.0, 0.0, 0.0)
        } else {
            counts.percentages()
        };
        Summary {
            schema_version: SCHEMA_VERSION,
            desk_id: input.desk_id.to_owned(),
            lesson_id: input.lesson_id.map(str::to_owned),
            lesson_start: input.lesson_start.to_owned(),
            lesson_end: input.lesson_end.map(str::to_owned),
            frames_analysed: tally.faces() + tally.frames_without_face,
            frames_with_face: tally.faces(),
            frames_without_face: tally.frames_without_face,
            frames_dropped: input.frames_dropped,
            frames_skipped: input.frames_skipped,
            expressions: Expression::ALL
                .iter()
                .map(|&e| ExpressionShare {
                    expression: e,
                    frames: tally.per_expression[e.label()],
                    percent: percentages[e.label()],
                })
                .collect(),
            reactions: Reactions {
                counts,
                positive_percent,
                neutral_percent,
                negative_percent,
            },
            estimated: tally
                .estimate(correction.as_ref())
                .map(|e| Estimated::new(&e)),
            impression: tally.impression(input.floor, correction.as_ref()),
            evidence: tally.evidence(input.floor),
            model: input.model.to_owned(),
            model_accuracy: input.model_accuracy,
            calibration: calibration.cloned(),
            video_note: input.video_note.map(str::to_owned),
            times: input.times,
        }
    }

    /// The verdict with its reason, in words.
    pub fn impression_text(&self) -> String {
        let within = if self
            .estimated
            .as_ref()
            .is_some_and(|e| e.verdict_within_error)
        {
            "; close: within the model's error it could go either way"
        } else {
            ""
        };
        match self.impression {
            Impression::Good => format!(
                "GOOD (estimated positive + neutral reactions outweigh negative ones{within})"
            ),
            Impression::Bad => format!(
                "BAD (estimated negative reactions are at least as frequent as the others{within})"
            ),
            Impression::Insufficient => {
                let e = &self.evidence;
                format!(
                    "INSUFFICIENT (not enough face to judge: a face in {} s of the lesson and \
                     {:.1} % of its frames; a verdict needs {} s and {:.0} %)",
                    e.face_seconds,
                    100.0 * e.face_share,
                    e.floor.min_face_seconds,
                    100.0 * e.floor.min_face_share
                )
            }
        }
    }

    /// The teacher's text.
    pub fn to_text(&self) -> String {
        let mut t = String::new();
        let _ = writeln!(t, "Ekspresi lesson summary — desk {}", self.desk_id);
        self.write_times(&mut t);
        let _ = writeln!(t);
        let _ = writeln!(t, "Impression: {}", self.impression_text());
        let _ = writeln!(t);
        if let Some(estimated) = &self.estimated {
            let _ = writeln!(
                t,
                "Estimated reactions, {} (90 % intervals):",
                estimated.method.words()
            );
            for (name, percent, [low, high]) in estimated.rows() {
                let _ = writeln!(t, "  {name:<10} {percent:>5.1}%   ({low:.1}–{high:.1}%)");
            }
            let _ = writeln!(t);
        }
        let _ = writeln!(
            t,
            "{:<38} {:>7} {:>8}",
            "What the model classified", "count", "percent"
        );
        let r = &self.reactions;
        for (name, count, percent) in [
            (
                "positive (happy, surprise)",
                r.counts.positive,
                r.positive_percent,
            ),
            ("neutral", r.counts.neutral, r.neutral_percent),
            (
                "negative (angry, disgust, fear, sad)",
                r.counts.negative,
                r.negative_percent,
            ),
        ] {
            let _ = writeln!(t, "  {name:<36} {count:>7} {percent:>7.1}%");
        }
        let _ = writeln!(t);
        let _ = writeln!(t, "Expressions            frames  percent");
        for share in &self.expressions {
            let _ = writeln!(
                t,
                "  {:<20} {:>7} {:>7.1}%",
                share.expression.name(),
                share.frames,
                share.percent
            );
        }
        let _ = writeln!(t);
        let _ = writeln!(
            t,
            "Frames analysed: {} ({} with a face, {} without); recorded without analysis: {}; dropped: {}",
            self.frames_analysed,
            self.frames_with_face,
            self.frames_without_face,
            self.frames_skipped,
            self.frames_dropped
        );
        if let Some(note) = &self.video_note {
            let _ = writeln!(t, "Video: {note}");
        }
        let _ = writeln!(t, "Model: {}", self.model);
        let _ = writeln!(t, "Note: {}", self.accuracy_note());
        t
    }

    /// The lesson's start and end lines, saying where they come from.
    fn write_times(&self, t: &mut String) {
        let end = self
            .lesson_end
            .as_deref()
            .unwrap_or("(in progress or interrupted)");
        let span = self
            .span_seconds()
            .map_or(String::new(), |s| format!("{s} s"));
        match self.times {
            LessonTimes::Camera => {
                let _ = writeln!(t, "Lesson start: {}", self.lesson_start);
                let _ = writeln!(t, "Lesson end:   {end}");
            }
            LessonTimes::Recording => {
                let _ = writeln!(
                    t,
                    "Lesson start: {} (the recording's time)",
                    self.lesson_start
                );
                let _ = writeln!(t, "Lesson end:   {end} (the recording's time; {span})");
            }
            LessonTimes::RecordingStartUnknown => {
                let _ = writeln!(
                    t,
                    "Lesson start: unknown (the recording does not say when it was made; \
                     replayed at {})",
                    self.lesson_start
                );
                let _ = writeln!(t, "Lesson length: {span} (the recording's own)");
            }
        }
    }

    /// Seconds from `lesson_start` to `lesson_end`, when both are times.
    pub fn span_seconds(&self) -> Option<u64> {
        let start = humantime::parse_rfc3339(&self.lesson_start).ok()?;
        let end = humantime::parse_rfc3339(self.lesson_end.as_deref()?).ok()?;
        Some(end.duration_since(start).ok()?.as_secs())
    }

    /// How far to trust the expressions, from the model's measured accuracy.
    fn accuracy_note(&self) -> String {
        const CAUTION: &str =
            "read these numbers as a rough trend, never as a judgement of one student.";
        match self.model_accuracy {
            Some(accuracy) => format!(
                "the model is right on about {:.0} in 100 faces it never saw (FER-2013 \
                 PublicTest: {accuracy:.3}), weakest on disgust, fear and sad; {CAUTION}",
                accuracy * 100.0
            ),
            None => format!(
                "this model is not one of the shipped ones, so its accuracy on unseen faces \
                 was not measured; {CAUTION}"
            ),
        }
    }
}

pub use ekspresi_common::fsutil::write_atomically;

pub use super::chart::timeline_chart;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_percentages_and_text() {
        let mut tally = Tally::default();
        for e in [
            Expression::Happy,
            Expression::Happy,
            Expression::Sad,
            Expression::Neutral,
        ] {
            tally.record(e, 0);
        }
        tally.record_no_face();
        let summary = Summary::build(&SummaryInput {
            desk_id: "desk-7",
            lesson_id: None,
            lesson_start: "2026-11-28T09:00:00Z",
            lesson_end: None,
            tally: &tally,
            floor: EvidenceFloor {
                min_face_seconds: 1,
                min_face_share: 0.5,
            },
            frames_dropped: 0,
            frames_skipped: 0,
            model: "lenet5-int8",
            model_accuracy: Some(0.6291),
            calibration: None,
            video_note: None,
            times: LessonTimes::Camera,
        });
        assert_eq!(summary.frames_analysed, 5);
        let total: f64 = summary.expressions.iter().map(|e| e.percent).sum();
        assert!((total - 100.0).abs() < 1e-9);
        assert_eq!(
            summary.reactions.counts,
            CategoryCounts {
                positive: 2,
                neutral: 1,
                negative: 1
            }
        );
        assert_eq!(summary.impression, Impression::Good);
        let text = summary.to_text();
        assert!(text.contains("Impression: GOOD"), "{text}");
        assert!(text.contains("happy"));
        let json = serde_json::to_value(&summary).unwrap();
        assert_eq!(json["schema_version"], 8);
        // No calibration: the estimate is the classified shares, said so.
        assert_eq!(json["estimated"]["method"], "classified-count");
        assert_eq!(json["estimated"]["positive_percent"], 50.0);
        assert!(json.get("calibration").is_none());
        assert!(text.contains("as the model classified them"), "{text}");
        assert!(
            text.contains(
                "right on about 63 in 100 faces it never saw (FER-2013 PublicTest: 0.629)"
            ),
            "{text}"
        );
        assert_eq!(json["impression"], "good");
        assert_eq!(json["evidence"]["face_seconds"], 1);

        // The shipped default model's calibration: corrected, carried, said so.
        let installed = crate::models::Installed::find().unwrap();
        let calibration = installed
            .named("lenet5")
            .unwrap()
            .calibration
            .clone()
            .unwrap();
        let corrected = Summary::build(&SummaryInput {
            calibration: Some(&calibration),
            ..input_of(&tally)
        });
        let json = serde_json::to_value(&corrected).unwrap();
        let estimated = &json["estimated"];
        assert_eq!(estimated["method"], "adjusted-count");
        let shares: f64 = ["positive_percent", "neutral_percent", "negative_percent"]
            .iter()
            .map(|k| estimated[k].as_f64().unwrap())
            .sum();
        assert!((shares - 100.0).abs() < 1e-9, "{estimated}");
        for category in ["positive", "neutral", "negative"] {
            let [low, high] =
                [0, 1].map(|i| estimated["interval_90"][category][i].as_f64().unwrap());
            let share = estimated[format!("{category}_percent")].as_f64().unwrap();
            assert!(low <= share && share <= high, "{estimated}");
        }
        assert_eq!(
            serde_json::from_value::<Calibration>(json["calibration"].clone()).unwrap(),
            calibration
        );
        assert_eq!(
            json["reactions"]["counts"]["positive"], 2,
            "raw counts stay"
        );
        let text = corrected.to_text();
        assert!(
            text.contains("Estimated reactions, corrected for the model's known confusions"),
            "{text}"
        );
        assert!(text.contains("What the model classified"), "{text}");

        let strict = Summary::build(&SummaryInput {
            floor: EvidenceFloor::default(),
            ..input_of(&tally)
        });
        assert_eq!(strict.impression, Impression::Insufficient);
        let text = strict.to_text();
        assert!(
            text.contains("INSUFFICIENT") && text.contains("1 s of the lesson and 80.0 %"),
            "{text}"
        );
    }

    fn input_of(tally: &Tally) -> SummaryInput<'_> {
        SummaryInput {
            desk_id: "desk-7",
            lesson_id: None,
            lesson_start: "2026-11-28T09:00:00Z",
            lesson_end: None,
            tally,
            floor: EvidenceFloor::default(),
            frames_dropped: 0,
            frames_skipped: 0,
            model: "lenet5-int8",
            model_accuracy: Some(0.6291),
            calibration: None,
            video_note: None,
            times: LessonTimes::Camera,
        }
    }

    #[test]
    fn timeline_fills_every_second() {
        let mut timeline = Timeline::default();
        timeline.record(0, Some(ekspresi_common::Category::Positive));
        timeline.record(2, None);
        assert_eq!(timeline.seconds().len(), 3);
        assert_eq!(timeline.to_csv().lines().nth(3), Some("2,0,0,0,1"));
    }
}
