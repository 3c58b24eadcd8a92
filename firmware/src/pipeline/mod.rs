//! The kiosk's frame path, generic over the LEDs' pin type and fed by any [`FrameSource`]:
//!
//! ```text
//! source ─▶ capture thread ─▶ queue ─▶ Lesson::step ─▶ queue ─▶ encoder thread ─▶ video.mp4
//!                                        │ analyse · count · LEDs · annotate
//!                                        └─▶ summaries (refreshed, and at Lesson::close)
//! ```
//!
//! - [`capture`]: the source on its own thread; a live camera never waits for analysis;
//! - [`analysis`]: grey, detect, choose the student's face, classify;
//! - [`lesson`]: one session folder, frame by frame (open, step, close);
//! - [`encoder`]: the H.264/MP4 thread, fed pictures with their capture times;
//! - the files each lesson writes are `crate::record`'s (summaries, the per-second log).

mod analysis;
mod capture;
mod encoder;
mod lesson;

use std::iter::Peekable;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::mpsc;
use std::sync::Arc;

use anyhow::{Context, Result};
use embedded_hal::digital::OutputPin;

use ekspresi_common::estimate::{Calibration, Correction};

use crate::config::KioskConfig;
use crate::devices::{Fault, FrameSource, StatusLeds};
use crate::record::session;
use crate::record::{reserve, retention};
pub use analysis::FaceAnalysis;
use capture::{spawn_capture, Captured, Feed};
use lesson::Lesson;
pub use lesson::LessonReport;

/// Free space on the card (the reserve counted as free) below which a lesson's video stops:
/// the reserve's room for the summaries, per-second log, `MANIFEST` and `COMPLETE` (a long
/// lesson's fit in a few hundred kB), and room for the per-second log and a fragment in
/// flight on top — the same whether the reserve is held or was given up.
const VIDEO_MARGIN_BYTES: u64 = reserve::RESERVE_BYTES + 256 * 1024;

/// The analysis side of the kiosk.
pub struct Kiosk<P: OutputPin> {
    config: KioskConfig,
    analysis: FaceAnalysis,
    leds: StatusLeds<P>,
    model_name: String,
    /// `PublicTest` accuracy of the model as `models.json` states it, for the summary's note.
    model_accuracy: Option<f64>,
    /// The model's confusions as `models.json` states them, and the lesson estimate's
    /// correction from them (`None` for a model the manifest does not calibrate).
    calibration: Option<Calibration>,
    correction: Option<Correction>,
    heartbeat: Option<Box<dyn FnMut() + Send>>,
}

/// Why a lesson closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum LessonEnd {
    /// The source ended, failed or was stopped: no more lessons.
    SourceDone,
    /// `lesson_minutes` passed; the next frame starts the next lesson.
    TimeUp,
}

impl<P: OutputPin> Kiosk<P> {
    pub fn new(config: KioskConfig, model: PathBuf, leds: StatusLeds<P>) -> Result<Self> {
        config.validate()?;
        let analysis = FaceAnalysis::new(&config, &model)?;
        let model_name = model.file_name().map_or_else(
            || model.display().to_string(),
            |n| n.to_string_lossy().into_owned(),
        );
        let listed = crate::models::listed_model(&model);
        let calibration = listed.as_ref().and_then(|m| m.calibration.clone());
        let correction = calibration
            .as_ref()
            .map(Correction::new)
            .transpose()
            .with_context(|| format!("models.json's calibration of {model_name}"))?;
        Ok(Self {
            config,
            analysis,
            leds,
            model_name,
            model_accuracy: listed.map(|m| m.public_test_int8),
            calibration,
            correction,
            heartbeat: None,
        })
    }

    /// Calls `heartbeat` for every frame analysed (the service feeds systemd's watchdog
    /// with it, so a stuck pipeline gets restarted).
    pub fn on_frame(&mut self, heartbeat: impl FnMut() + Send + 'static) {
        self.heartbeat = Some(Box::new(heartbeat));
    }

    /// Names the next lessons (the timetable's lesson id; `None`: the config's).
    pub fn set_lesson_id(&mut self, lesson_id: Option<String>) {
        self.config.lesson_id = lesson_id;
    }

    pub fn leds(&mut self) -> &mut StatusLeds<P> {
        &mut self.leds
    }

    /// Runs lessons from `source` until it ends or `stop` is set: one session folder per
    /// lesson. With `lesson_minutes` set, a lesson closes (its files complete) once that much
    /// video time has passed and the next frame opens the next lesson, from the same source
    /// without a gap; otherwise everything is one lesson.
    pub fn run_lessons(
        &mut self,
        source: Box<dyn FrameSource>,
        stop: Arc<AtomicBool>,
    ) -> Result<Vec<LessonReport>> {
        // Room first, so that finishing interrupted sessions can write on a full card.
        self.make_room(None);
        // Recovery hashes whole videos: the watchdog is fed all along.
        let data_dir = self.config.data_dir.clone();
        let recovered = session::recover_unfinished_feeding(&data_dir, &mut || self.beat())
            .with_context(|| {
                format!(
                    "cannot check {} for unfinished sessions",
                    data_dir.display()
                )
            })?;
        if !recovered.is_empty() {
            tracing::info!(count = recovered.len(), "finished interrupted sessions");
        }
        if let Err(error) = reserve::ensure(&data_dir, self.floor_bytes()) {
            tracing::warn!(%error, "cannot hold back space for summaries");
        }
        let feed = Feed::of(source.as_ref());
        let (receiver, capture) = spawn_capture(source, self.config.queue_frames, stop, &feed);
        let mut frames = receiver.iter().peekable();
        let mut reports = Vec::new();
        loop {
            let (report, ended) = self.run_one_lesson(&mut frames, &feed)?;
            reports.push(report);
            if ended == LessonEnd::SourceDone {
                break;
            }
        }
        drop(frames);
        drop(receiver);
        let _ = capture.join();
        Ok(reports)
    }

    /// One lesson from `frames`, until the source ends or fails, or the lesson's time is up
    /// (the frame past it stays in `frames` for the next lesson).
    fn run_one_lesson(
        &mut self,
        frames: &mut Peekable<mpsc::Iter<'_, Captured>>,
        feed: &Feed,
    ) -> Result<(LessonReport, LessonEnd)> {
        let mut lesson = Lesson::open(self, feed)?;
        let length = self.config.lesson_length();
        let mut source_error = None;
        let ended = loop {
            if let Some(Ok(next)) = frames.peek() {
                if lesson.is_over_at(next.timestamp(), length) {
                    break LessonEnd::TimeUp;
                }
            }
            match frames.next() {
                None => break LessonEnd::SourceDone,
                Some(Ok(frame)) => {
                    feed.took_one();
                    // Behind a live camera: record this frame, analyse the newest.
                    if feed.live && feed.waiting() > 0 {
                        lesson.record_only(self, frame);
                    } else {
                        lesson.step(self, frame, feed)?;
                    }
                }
                Some(Err(error)) => {
                    tracing::error!(%error, "frame source failed; ending the lesson with what was recorded");
                    source_error = Some(error.to_string());
                    let _ = self.leds.set_fault(Some(Fault::NoCamera));
                    break LessonEnd::SourceDone;
                }
            }
        };
        let last = ended == LessonEnd::SourceDone;
        let report = lesson.close(self, feed, source_error, last)?;
        Ok((report, ended))
    }

    fn beat(&mut self) {
        if let Some(heartbeat) = self.heartbeat.as_mut() {
            heartbeat();
        }
    }

    /// Retention: removes older lessons' videos (uploaded ones first) until the card's free
    /// space is back above the floor, sparing `running`. True when the floor is met.
    fn make_room(&self, running: Option<&Path>) -> bool {
        let data_dir = &self.config.data_dir;
        if !data_dir.exists() {
            return true; // a first start: nothing recorded yet, nothing to free
        }
        let floor = self.floor_bytes();
        let available = || reserve::free_space(data_dir);
        match retention::free_space(data_dir, floor, running, available) {
            Ok(freed) => {
                if !freed.is_empty() {
                    let bytes: u64 = freed.iter().map(|f| f.bytes).sum();
                    tracing::warn!(
                        sessions = freed.len(),
                        bytes,
                        "freed space by removing older videos"
                    );
                }
                available().is_ok_and(|bytes| bytes >= floor)
            }
            Err(error) => {
                tracing::warn!(%error, "retention could not free space");
                false
            }
        }
    }

    /// Room for a new lesson: retention first; when that cannot reach the floor (nothing
    /// left that it may remove), the space reserve is given up so the summaries still fit.
    fn room_for_a_lesson(&self) {
        let data_dir = &self.config.data_dir;
        let floor = self.floor_bytes();
        // The floor counts the reserve as free; the files need it on the card itself.
        let on_card = || fs4::available_space(data_dir).is_ok_and(|bytes| bytes >= floor);
        if !data_dir.exists() || (self.make_room(None) && on_card()) {
            return;
        }
        match reserve::release(data_dir) {
            Ok(true) => tracing::warn!("card full: the lesson's summaries use the space reserve"),
            Ok(false) => tracing::warn!("card full and no space reserve left"),
            Err(error) => tracing::warn!(%error, "cannot give up the space reserve"),
        }
    }

    /// Runs `write` (a lesson's summaries, `MANIFEST`, `COMPLETE`); when it fails — a card
    /// that filled during the lesson — and the space reserve is held, gives the reserve up
    /// and tries once more, so the lesson's analysis is kept whatever the video took.
    fn with_reserve<T>(
        &mut self,
        what: &str,
        mut write: impl FnMut(&mut Self) -> Result<T>,
    ) -> Result<T> {
        let error = match write(self) {
            Ok(value) => return Ok(value),
            Err(error) => error,
        };
        match reserve::release(&self.config.data_dir) {
            Ok(true) => {
                tracing::warn!(%error, "card full: the space reserve is given up for the lesson's {what}");
                write(self)
            }
            _ => Err(error),
        }
    }

    /// True when the card has less than [`VIDEO_MARGIN_BYTES`] free: the video stops there,
    /// whatever the configured floor.
    fn card_nearly_full(&self) -> bool {
        reserve::free_space(&self.config.data_dir).is_ok_and(|bytes| bytes < VIDEO_MARGIN_BYTES)
    }

    /// The configured free-space floor (`min_free_mib`), in bytes.
    fn floor_bytes(&self) -> u64 {
        self.config.min_free_mib.saturating_mul(1024 * 1024)
    }

    /// Free space (the reserve counted as free) under the floor.
    fn low_on_space(&self) -> bool {
        match reserve::free_space(&self.config.data_dir) {
            Ok(bytes) => bytes < self.floor_bytes(),
            Err(_) => false,
        }
    }
}
