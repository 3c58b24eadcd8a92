//! The kiosk's configuration: JSON, every field optional with a default, unknown fields
//! rejected, and values validated at start with errors that name the field.

#![deny(clippy::arithmetic_side_effects, clippy::cast_possible_truncation)]

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::aggregate::EvidenceFloor;
use crate::detect::DetectParams;

/// Camera settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CameraConfig {
    pub device: PathBuf,
    pub width: u32,
    pub height: u32,
    pub fps: u32,
    /// `auto`, `yuyv` or `mjpeg`.
    pub format: String,
    /// Start under libcamera's V4L2 compatibility layer (Raspberry Pi camera modules).
    pub libcamera_compat: bool,
}

impl Default for CameraConfig {
    /// 640×480 at 30 fps: from the `pipeline_stages` bench and the Pi 4 estimate in the
    /// README (about 17 ms of the analysis thread per frame on a Pi 4, so about 57 analysed
    /// frames a second on paper: a 1.9× margin over 30 fps). Where the estimate is wrong the
    /// camera still records every frame and the analysis takes the newest
    /// (`Lesson::record_only`), counting what it skipped.
    fn default() -> Self {
        Self {
            device: PathBuf::from("/dev/video0"),
            width: 640,
            height: 480,
            fps: 30,
            format: "auto".into(),
            libcamera_compat: false,
        }
    }
}

/// BCM GPIO numbers of the LEDs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GpioConfig {
    pub good_led: u8,
    pub bad_led: u8,
    pub camera_led: u8,
}

impl Default for GpioConfig {
    fn default() -> Self {
        Self {
            good_led: 17,
            bad_led: 27,
            camera_led: 22,
        }
    }
}

/// Which detected face counts as the student at this desk.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StudentRule {
    /// Smallest face width, as a fraction of the frame width.
    pub min_face_fraction: f64,
    /// Frames in a row a face must be held before it counts.
    pub min_track_frames: u32,
}

impl Default for StudentRule {
    /// 0.1 of the frame width, from desk geometry: a face is about 15 cm wide; a camera of
    /// 66° horizontal field of view (Raspberry Pi Camera Module 3; the v2 module has 62°)
    /// has a focal length of 0.77 frame widths, so a face 1.15 m away is 0.1 frame widths
    /// wide. A student at the desk sits 40–80 cm from the camera (0.14–0.29 widths); a face
    /// further than about 1.15 m is someone behind them. 3 frames (a tenth of a second at
    /// 30 fps): enough to drop one- and two-frame false detections.
    fn default() -> Self {
        Self {
            min_face_fraction: 0.1,
            min_track_frames: 3,
        }
    }
}

/// Where `kiosk upload` sends this desk's finished lessons (see [`crate::upload`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct UploadConfig {
    /// The destination the upload timer uses: a directory (a USB stick, a mounted share) or
    /// `ssh://user@host[:port]/path`; `None`: only `kiosk upload --to` uploads.
    pub to: Option<String>,
    /// The desk's private SSH key for `ssh://` destinations (key-based login only).
    pub ssh_key: PathBuf,
    /// The destination server's host key as its `.pub` file has it (`ssh-ed25519 AAAA…`):
    /// pinned, so the desk never trusts a key it has not been given.
    pub host_key: Option<String>,
}

impl Default for UploadConfig {
    fn default() -> Self {
        Self {
            to: None,
            ssh_key: PathBuf::from("/etc/ekspresi/upload_key"),
            host_key: None,
        }
    }
}

/// How much of each frame the detector searches.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ScanMode {
    /// Only faces of at least the student's size (`student.min_face_fraction`), on the frame
    /// reduced as far as that size allows (see `detect::reduce`): a fraction of the work.
    #[default]
    Student,
    /// OpenCV's full scan from `detect.min_size` up, on the frame as it is.
    Full,
}

/// What the kiosk records of the picture.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum VideoMode {
    /// The annotated video as the camera saw it.
    #[default]
    Clear,
    /// The annotated video with the whole picture blurred beyond recognition (the overlay
    /// stays sharp; see `record::privacy`).
    Blurred,
    /// No video: aggregates only.
    #[serde(rename = "none")]
    Off,
}

/// Everything the kiosk reads from `config.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct KioskConfig {
    pub desk_id: String,
    /// Where session folders go (the SD card's data partition).
    pub data_dir: PathBuf,
    /// Expression model: a name from `models.json` or a path to an ONNX file; `None` uses
    /// the manifest's default, the int8 LeNet-5 (see `models::resolve`).
    pub model: Option<String>,
    pub camera: CameraConfig,
    pub gpio: GpioConfig,
    pub detect: DetectParams,
    /// `student` (faces of the student's size, on a reduced frame) or `full` (OpenCV's
    /// full scan at every size from `detect.min_size`).
    pub scan: ScanMode,
    /// Between full scans, search only near the last face for up to this many frames
    /// (0: scan the whole frame every time). 10 by default: on the real-time bench clip and
    /// the demo it finds the same student face as full scans in every frame (measured by
    /// `benches/pipeline_stages.rs`) for about a quarter of the student scan's work.
    pub track_face_frames: u32,
    /// Which face is the student's (size relative to the frame, frames held).
    pub student: StudentRule,
    /// Margin added around the detected face before the 48×48 crop, as a fraction of its size.
    pub face_margin: f32,
    /// Weight of the newest frame in the display smoothing (1 = none).
    pub smoothing_alpha: f32,
    /// Frames without a face after which the momentary ("now") expression is forgotten.
    pub no_face_reset_frames: u32,
    /// The least face evidence for a good/bad verdict; below it the lesson is
    /// `insufficient` (summary, LEDs and overlay alike).
    pub evidence: EvidenceFloor,
    /// `clear`, `blurred` (nobody recognisable, overlay kept) or `none` (aggregates only).
    pub video: VideoMode,
    /// age X25519 recipients (`age1…`, the school's public keys) the video is encrypted to
    /// as it is written (see `seal`); empty: the video is written in the clear.
    pub encrypt_to: Vec<String>,
    /// Seconds between keyframes, i.e. the most video a power cut can lose.
    pub keyframe_interval_s: u32,
    /// Seconds of lesson between summary refreshes.
    pub summary_refresh_s: u32,
    /// Close the session after this many minutes of video and start the next one, so each
    /// lesson gets its own summary (0: one session from start to stop).
    pub lesson_minutes: f64,
    /// Stop the video when free space falls under this many MiB.
    pub min_free_mib: u64,
    /// Frames buffered between capture, analysis and encoding.
    pub queue_frames: usize,
    /// Names the lesson in `summary.json`, so `kiosk report` groups desks by it (desks of one
    /// class share it; sessions with different ids are never one lesson). `None`: grouped by
    /// overlapping time alone.
    pub lesson_id: Option<String>,
    /// Where finished lessons are uploaded to.
    pub upload: UploadConfig,
    /// The school's MQTT broker the desk publishes its aggregates to (`ekspresi publish`);
    /// without `broker`, nothing is published.
    pub publish: crate::live::broker::BrokerConfig,
    /// The school's bell schedule: with it, `kiosk run` captures only during these lessons,
    /// each its own session with its lesson id (see `timetable`); empty: from start to stop.
    pub timetable: Vec<crate::timetable::TimetableEntry>,
}

impl Default for KioskConfig {
    fn default() -> Self {
        Self {
            desk_id: "desk-1".into(),
            data_dir: PathBuf::from("/var/lib/ekspresi"),
            model: None,
            camera: CameraConfig::default(),
            gpio: GpioConfig::default(),
            detect: DetectParams::default(),
            scan: ScanMode::Student,
            track_face_frames: 10,
            student: StudentRule::default(),
            face_margin: 0.0,
            smoothing_alpha: 0.3,
            no_face_reset_frames: 20,
            evidence: EvidenceFloor::default(),
            video: VideoMode::Clear,
            encrypt_to: Vec::new(),
            keyframe_interval_s: 2,
            summary_refresh_s: 10,
            lesson_minutes: 0.0,
            min_free_mib: 200,
            queue_frames: 4,
            lesson_id: None,
            upload: UploadConfig::default(),
            publish: crate::live::broker::BrokerConfig::default(),
            timetable: Vec::new(),
        }
    }
}

/// A configuration problem, naming the field.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config {path} is not valid: {source}")]
    Parse {
        path: PathBuf,
        source: serde_json::Error,
    },
    #[error("config field `{field}`: {reason}")]
    Invalid { field: &'static str, reason: String },
}

impl KioskConfig {
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        let config: KioskConfig =
            serde_json::from_str(&text).map_err(|source| ConfigError::Parse {
                path: path.to_owned(),
                source,
            })?;
        config.validate()?;
        Ok(config)
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |field, reason: &str| {
            Err(ConfigError::Invalid {
                field,
                reason: reason.to_owned(),
            })
        };
        if !is_safe_name(&self.desk_id) {
            return invalid(
                "desk_id",
                "use letters, digits, '-' or '_' (it names a folder)",
            );
        }
        if let Err(e) = self.detect.validate() {
            return invalid("detect", &e.to_string());
        }
        if !(0.0..=1.0).contains(&self.face_margin) {
            return invalid("face_margin", "must be between 0 and 1");
        }
        if !(self.smoothing_alpha > 0.0 && self.smoothing_alpha <= 1.0) {
            return invalid("smoothing_alpha", "must be in (0, 1]");
        }
        let (width, height) = (self.camera.width, self.camera.height);
        if !width.is_multiple_of(2)
            || !height.is_multiple_of(2)
            || !(64..=4096).contains(&width)
            || !(48..=4096).contains(&height)
        {
            return invalid(
                "camera.width/height",
                "must be even, 64..4096 wide and 48..4096 high",
            );
        }
        if !(1..=60).contains(&self.camera.fps) {
            return invalid("camera.fps", "must be 1..60");
        }
        if !matches!(self.camera.format.as_str(), "auto" | "yuyv" | "mjpeg") {
            return invalid("camera.format", "must be auto, yuyv or mjpeg");
        }
        let pins = [self.gpio.good_led, self.gpio.bad_led, self.gpio.camera_led];
        if pins.iter().any(|&p| p > 27)
            || pins[0] == pins[1]
            || pins[1] == pins[2]
            || pins[0] == pins[2]
        {
            return invalid("gpio", "three different BCM pins 0..27");
        }
        // Each bound is what the field means, not a product limit: a power cut loses up to
        // a keyframe interval of video; a queue holds whole frames in memory (a 640×480
        // frame is 0.9 MB); summaries older than an hour would make a power cut costly.
        if let Err(e) = crate::seal::parse_recipients(&self.encrypt_to) {
            return invalid("encrypt_to", &e.to_string());
        }
        if !(1..=10).contains(&self.keyframe_interval_s) {
            return invalid(
                "keyframe_interval_s",
                "must be 1..10 (seconds of video a power cut may lose)",
            );
        }
        if !(1..=3600).contains(&self.summary_refresh_s) {
            return invalid("summary_refresh_s", "must be 1..3600");
        }
        if !(1..=64).contains(&self.queue_frames) {
            return invalid("queue_frames", "must be 1..64 (frames held in memory)");
        }
        if self.track_face_frames > 300 {
            return invalid(
                "track_face_frames",
                "must be 0..300 (frames between full scans)",
            );
        }
        if !(1..=100_000).contains(&self.no_face_reset_frames) {
            return invalid("no_face_reset_frames", "must be 1..100000");
        }
        if self.min_free_mib > 1 << 20 {
            return invalid("min_free_mib", "must be 0..1048576 (1 TiB)");
        }
        if !(0.0..=1.0).contains(&self.student.min_face_fraction) {
            return invalid("student.min_face_fraction", "must be between 0 and 1");
        }
        if !(1..=300).contains(&self.student.min_track_frames) {
            return invalid("student.min_track_frames", "must be 1..300");
        }
        let floor = self.evidence;
        if floor.min_face_seconds > 24 * 3600 {
            return invalid("evidence.min_face_seconds", "must be 0..86400");
        }
        if !(0.0..=1.0).contains(&floor.min_face_share) {
            return invalid("evidence.min_face_share", "must be between 0 and 1");
        }
        if let Some(id) = &self.lesson_id {
            if !is_safe_name(id) || id.len() > 64 {
                return invalid(
                    "lesson_id",
                    "use 1..64 letters, digits, '-' or '_' (it names a report folder)",
                );
            }
        }
        if let Err(e) = self.upload.validate() {
            return invalid("upload", &e.to_string());
        }
        if let Err(e) = crate::timetable::Timetable::new(&self.timetable) {
            return invalid("timetable", &e);
        }
        if let Some(address) = &self.publish.broker {
            if let Err(e) = crate::live::broker::parse_address(address) {
                return invalid("publish.broker", &e.to_string());
            }
        }
        // Under a minute per lesson would fill the card with session folders; 24 h is a
        // sanity bound, not a product limit.
        let lesson = self.lesson_minutes;
        if !(lesson == 0.0 || (0.05..=crate::limits::MAX_LESSON_MINUTES).contains(&lesson)) {
            return invalid("lesson_minutes", "must be 0 (off) or 0.05..720 (12 hours)");
        }
        Ok(())
    }

    /// How long one lesson's session lasts: `lesson_minutes`, or with 0 (off) until the
    /// source ends or is stopped — but never longer than [`crate::limits::MAX_LESSON`], so a
    /// kiosk left running for days still writes sessions of bounded size.
    pub fn lesson_length(&self) -> Duration {
        if self.lesson_minutes > 0.0 {
            Duration::from_secs_f64(self.lesson_minutes * 60.0).min(crate::limits::MAX_LESSON)
        } else {
            crate::limits::MAX_LESSON
        }
    }
}

impl UploadConfig {
    fn validate(&self) -> Result<(), crate::upload::UploadError> {
        if let Some(to) = &self.to {
            crate::upload::Destination::parse(to)?;
        }
        if let Some(key) = &self.host_key {
            crate::upload::HostKey::parse(key)?;
        }
        Ok(())
    }
}

/// A name that is safe as one path component: letters, digits, `-` and `_`.
pub fn is_safe_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

#[cfg(test)]
#[allow(clippy::arithmetic_side_effects, clippy::cast_possible_truncation)] // test inputs
mod tests {
    use super::*;

    #[test]
    fn empty_json_gives_defaults_and_errors_name_the_field() {
        let config: KioskConfig = serde_json::from_str("{}").unwrap();
        assert_eq!(config, KioskConfig::default());
        config.validate().unwrap();

        let unknown = serde_json::from_str::<KioskConfig>(r#"{"desk": "x"}"#).unwrap_err();
        assert!(
            unknown.to_string().contains("unknown field `desk`"),
            "{unknown}"
        );

        let bad = KioskConfig {
            smoothing_alpha: 0.0,
            ..KioskConfig::default()
        };
        let err = bad.validate().unwrap_err().to_string();
        assert!(err.contains("smoothing_alpha"), "{err}");

        let bad: KioskConfig = serde_json::from_str(r#"{"lesson_minutes": -5}"#).unwrap();
        assert!(bad
            .validate()
            .unwrap_err()
            .to_string()
            .contains("lesson_minutes"));
        let lessons: KioskConfig = serde_json::from_str(r#"{"lesson_minutes": 45}"#).unwrap();
        assert_eq!(lessons.lesson_length(), Duration::from_secs(45 * 60));
        let all_day: KioskConfig = serde_json::from_str(r#"{"lesson_minutes": 0}"#).unwrap();
        assert_eq!(all_day.lesson_length(), crate::limits::MAX_LESSON);
        let long: KioskConfig = serde_json::from_str(r#"{"lesson_minutes": 721}"#).unwrap();
        assert!(long.validate().is_err());

        let bad: KioskConfig =
            serde_json::from_str(r#"{"detect": {"scale_factor": 0.9}}"#).unwrap();
        assert!(bad.validate().unwrap_err().to_string().contains("`detect`"));
    }

    /// The absurd values an audit fed the kiosk are refused at start, naming the field.
    #[test]
    fn absurd_values_are_refused_naming_the_field() {
        for (json, field) in [
            (r#"{"queue_frames": 18446744073709551615}"#, "queue_frames"),
            (r#"{"queue_frames": 0}"#, "queue_frames"),
            (r#"{"detect": {"scale_factor": 1.0000001}}"#, "detect"),
            (r#"{"detect": {"min_size": 4294967295}}"#, "detect"),
            (r#"{"encrypt_to": ["age1qqqq"]}"#, "encrypt_to"),
            (
                r#"{"keyframe_interval_s": 4294967295}"#,
                "keyframe_interval_s",
            ),
            (r#"{"summary_refresh_s": 0}"#, "summary_refresh_s"),
            (r#"{"track_face_frames": 100000}"#, "track_face_frames"),
            (
                r#"{"camera": {"width": 100000, "height": 480}}"#,
                "camera.width",
            ),
            (
                r#"{"evidence": {"min_face_share": 1.5}}"#,
                "evidence.min_face_share",
            ),
            (r#"{"min_free_mib": 18446744073709551615}"#, "min_free_mib"),
        ] {
            let config: KioskConfig = serde_json::from_str(json).unwrap();
            let error = config.validate().unwrap_err().to_string();
            assert!(error.contains(field), "{json}: {error}");
        }
        // NaN cannot be written in JSON; a NaN floor from code is refused too.
        let nan = KioskConfig {
            evidence: EvidenceFloor {
                min_face_share: f64::NAN,
                ..EvidenceFloor::default()
            },
            ..KioskConfig::default()
        };
        assert!(nan.validate().is_err());
    }

    #[test]
    fn the_deploy_kits_config_is_valid_and_spells_out_the_defaults() {
        let shipped: KioskConfig =
            serde_json::from_str(include_str!("../../board/deploy/config.json")).unwrap();
        shipped.validate().unwrap();
        assert_eq!(shipped, KioskConfig::default());
    }

    #[test]
    fn a_corrupt_file_is_a_clear_error() {
        let path =
            std::env::temp_dir().join(format!("ekspresi-bad-config-{}.json", std::process::id()));
        std::fs::write(&path, b"{\"desk_id\": ").unwrap();
        let err = KioskConfig::load(&path).unwrap_err().to_string();
        assert!(err.contains("is not valid"), "{err}");
        let _ = std::fs::remove_file(&path);
    }
}
