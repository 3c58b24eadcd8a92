//! The topics and the one message a desk publishes: a window of its lesson's per-second
//! category counts (schema 1).
//!
//! `ekspresi/v1/<desk>/status` holds `online` (retained; the broker publishes the last will
//! `offline` when the desk goes silent) and `ekspresi/v1/<desk>/counts` one [`WindowCounts`]
//! per window. The live view trusts the desk id only from the topic (the broker's ACL lets
//! a desk write under its own id only) and checks every number before using it.

use ekspresi_common::estimate::{Calibration, Correction, SecondBlocks};
use serde::{Deserialize, Serialize};

use crate::config::is_safe_name;

/// Layout version of [`WindowCounts`].
pub const SCHEMA: u32 = 1;
/// Prefix of every topic.
pub const PREFIX: &str = "ekspresi/v1";
/// Most seconds one window may hold.
pub const MAX_WINDOW_SECONDS: usize = 60;
/// Largest message accepted (a 60-second window with its calibration is about 2 kB).
pub const MAX_MESSAGE_BYTES: usize = 16 * 1024;

/// `ekspresi/v1/<desk>/status`.
pub fn status_topic(desk: &str) -> String {
    format!("{PREFIX}/{desk}/status")
}

/// `ekspresi/v1/<desk>/counts`.
pub fn counts_topic(desk: &str) -> String {
    format!("{PREFIX}/{desk}/counts")
}

/// What a topic is about: the desk and which of its two topics.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Topic {
    Status(String),
    Counts(String),
}

impl Topic {
    /// The desk and kind of `topic`; `None` for anything else (or an unsafe desk id).
    pub fn parse(topic: &str) -> Option<Topic> {
        let rest = topic.strip_prefix(PREFIX)?.strip_prefix('/')?;
        let (desk, kind) = rest.split_once('/')?;
        if !is_safe_name(desk) {
            return None;
        }
        match kind {
            "status" => Some(Topic::Status(desk.to_owned())),
            "counts" => Some(Topic::Counts(desk.to_owned())),
            _ => None,
        }
    }
}

/// One second's faces per category and frames without a face.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SecondCount {
    pub second: u64,
    pub positive: u64,
    pub neutral: u64,
    pub negative: u64,
    pub no_face: u64,
}

/// A window of a desk's lesson.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WindowCounts {
    pub schema: u32,
    /// The session folder's name (its start).
    pub session: String,
    /// Windows published in this session before this one.
    pub sequence: u64,
    /// The window's first second of the lesson.
    pub window_start: u64,
    /// Seconds the window spans.
    pub seconds: u64,
    /// The seconds of the window that have a row in `seconds.csv`.
    pub per_second: Vec<SecondCount>,
    /// The model's file name.
    pub model: String,
    /// What the lesson estimator needs to correct the shares (`None`: uncorrected).
    pub calibration: Option<Calibration>,
}

/// Why a message was not used.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum MessageError {
    #[error("message of {0} bytes (at most {MAX_MESSAGE_BYTES})")]
    TooLarge(usize),
    #[error("not a counts message: {0}")]
    Json(String),
    #[error("schema {0}, this reader knows {SCHEMA}")]
    Schema(u32),
    #[error("{0}")]
    Invalid(&'static str),
    #[error("calibration: {0}")]
    Calibration(#[from] ekspresi_common::estimate::CalibrationError),
}

impl WindowCounts {
    /// A message from a desk, checked: its size, layout and every number.
    pub fn parse(bytes: &[u8]) -> Result<(WindowCounts, Option<Correction>), MessageError> {
        if bytes.len() > MAX_MESSAGE_BYTES {
            return Err(MessageError::TooLarge(bytes.len()));
        }
        let message: WindowCounts =
            serde_json::from_slice(bytes).map_err(|e| MessageError::Json(e.to_string()))?;
        if message.schema != SCHEMA {
            return Err(MessageError::Schema(message.schema));
        }
        let correction = message.check()?;
        Ok((message, correction))
    }

    fn check(&self) -> Result<Option<Correction>, MessageError> {
        let invalid = |reason| Err(MessageError::Invalid(reason));
        if !(1..=MAX_WINDOW_SECONDS as u64).contains(&self.seconds) {
            return invalid("a window spans 1 to 60 seconds");
        }
        if self.per_second.len() > self.seconds as usize {
            return invalid("more rows than seconds");
        }
        let end = self.window_start.saturating_add(self.seconds);
        if end > crate::limits::MAX_LESSON_SECONDS {
            return invalid("a window past the longest lesson");
        }
        let mut previous = None;
        for row in &self.per_second {
            if !(self.window_start..end).contains(&row.second) || previous >= Some(row.second) {
                return invalid("seconds outside the window or out of order");
            }
            previous = Some(row.second);
            let frames = [row.positive, row.neutral, row.negative, row.no_face]
                .iter()
                .try_fold(0u64, |sum, &n| sum.checked_add(n));
            if frames.is_none_or(|f| f > crate::limits::MAX_FRAMES_IN_A_SECOND) {
                return invalid("more frames in a second than a camera gives");
            }
        }
        if self.session.len() > 64 || self.model.len() > 256 {
            return invalid("names too long");
        }
        Ok(self.calibration.as_ref().map(Correction::new).transpose()?)
    }

    /// The window's seconds as the estimator keeps them.
    pub fn blocks(&self) -> SecondBlocks {
        let mut blocks = SecondBlocks::default();
        for row in &self.per_second {
            blocks.add_second([row.positive, row.neutral, row.negative]);
        }
        blocks
    }

    /// Seconds of the window with at least one face.
    pub fn face_seconds(&self) -> u64 {
        self.per_second
            .iter()
            .filter(|r| r.positive + r.neutral + r.negative > 0)
            .count() as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn window() -> WindowCounts {
        WindowCounts {
            schema: SCHEMA,
            session: "2026-12-04T09-00-00Z".into(),
            sequence: 0,
            window_start: 10,
            seconds: 10,
            per_second: (10..20)
                .map(|second| SecondCount {
                    second,
                    positive: 1,
                    neutral: 2,
                    negative: 3,
                    no_face: 0,
                })
                .collect(),
            model: "lenet5-int8.onnx".into(),
            calibration: None,
        }
    }

    #[test]
    fn topics_name_a_safe_desk_or_nothing() {
        assert_eq!(
            Topic::parse("ekspresi/v1/desk-01/counts"),
            Some(Topic::Counts("desk-01".into()))
        );
        assert_eq!(
            Topic::parse(&status_topic("d2")),
            Some(Topic::Status("d2".into()))
        );
        for bad in [
            "ekspresi/v1/../counts",
            "ekspresi/v1/desk/other",
            "ekspresi/v2/desk/counts",
            "ekspresi/v1/de sk/counts",
        ] {
            assert_eq!(Topic::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn hostile_windows_are_refused_with_a_reason() {
        let good = serde_json::to_vec(&window()).unwrap();
        let (parsed, correction) = WindowCounts::parse(&good).unwrap();
        assert_eq!(parsed.face_seconds(), 10);
        assert!(correction.is_none());
        let mut cases: Vec<(WindowCounts, &str)> = Vec::new();
        let mut w = window();
        w.seconds = 1_000_000;
        cases.push((w, "1 to 60"));
        let mut w = window();
        w.per_second[3].second = 99;
        cases.push((w, "outside the window"));
        let mut w = window();
        w.per_second[2].positive = u64::MAX;
        cases.push((w, "more frames"));
        let mut w = window();
        w.window_start = u64::MAX - 5;
        cases.push((w, "past the longest lesson"));
        let mut w = window();
        w.calibration = Some(Calibration {
            validation_of: "x".into(),
            category_confusion: [[1, 0, 0], [0, 1, 0], [0, 0, 1]],
            probabilities: None,
        });
        cases.push((w, "calibration"));
        for (w, reason) in cases {
            let error = WindowCounts::parse(&serde_json::to_vec(&w).unwrap())
                .unwrap_err()
                .to_string();
            assert!(error.contains(reason), "{error} (wanted {reason})");
        }
        let huge = vec![b' '; MAX_MESSAGE_BYTES + 1];
        assert!(matches!(
            WindowCounts::parse(&huge),
            Err(MessageError::TooLarge(_))
        ));
        let mut other = serde_json::to_value(window()).unwrap();
        other["schema"] = 2.into();
        assert_eq!(
            WindowCounts::parse(&serde_json::to_vec(&other).unwrap()),
            Err(MessageError::Schema(2))
        );
    }
}
