//! The kiosk's main loop, generic over the LEDs' pin type and fed by any [`FrameSource`]:
//! detect → pick the student's face (the largest) → classify → count → show → record.
//!
//! Threads: the source is read on its own thread into a bounded queue (a live camera never
//! waits for analysis: when the queue is full the frame is dropped and counted); encoding runs
//! on another thread behind a bounded queue (for live sources a full queue drops the video
//! frame, never the analysis). File sources are replayed without drops, as fast as the CPU
//! allows.

use std::iter::Peekable;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use anyhow::{Context, Result};
use embedded_hal::digital::OutputPin;
use image::RgbImage;

use crate::aggregate::{top_expression, Impression, Smoother, Tally};
use crate::classify::FaceClassifier;
use crate::config::KioskConfig;
use crate::detect::group::Group;
use crate::detect::{Cascade, Detector, FaceTracker, GreyFrame, Rect};
use crate::hal::{Fault, Frame, FrameSource, SourceError, StatusLeds};
use crate::record::overlay::{Annotation, Overlay};
use crate::record::session::{self, SessionDir};
use crate::record::summary::{timeline_chart, write_atomically, Summary, SummaryInput, Timeline};
use crate::record::video::VideoRecorder;

/// What a finished lesson left behind.
#[derive(Debug)]
pub struct LessonReport {
    pub session: PathBuf,
    pub summary: Summary,
    pub video_frames: u64,
    /// Set when the source failed mid-lesson (the files are still complete).
    pub source_error: Option<String>,
}

/// The analysis side of the kiosk.
pub struct Kiosk<P: OutputPin> {
    config: KioskConfig,
    detector: Detector,
    classifier: FaceClassifier,
    leds: StatusLeds<P>,
    model_name: String,
    heartbeat: Option<Box<dyn FnMut() + Send>>,
}

impl<P: OutputPin> Kiosk<P> {
    pub fn new(config: KioskConfig, model: PathBuf, leds: StatusLeds<P>) -> Result<Self> {
        config.validate()?;
        let detector = Detector::new(Cascade::frontal_face()?, config.detect)?;
        let classifier = FaceClassifier::load(&model, config.face_margin)
            .with_context(|| format!("cannot load the expression model {}", model.display()))?;
        let model_name = model.file_name().map_or_else(
            || model.display().to_string(),
            |n| n.to_string_lossy().into_owned(),
        );
        Ok(Self {
            config,
            detector,
            classifier,
            leds,
            model_name,
            heartbeat: None,
        })
    }

    /// Calls `heartbeat` for every frame analysed (the service feeds systemd's watchdog
    /// with it, so a stuck pipeline gets restarted).
    pub fn on_frame(&mut self, heartbeat: impl FnMut() + Send + 'static) {
        self.heartbeat = Some(Box::new(heartbeat));
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
        let recovered = session::recover_unfinished(&self.config.data_dir).with_context(|| {
            format!(
                "cannot check {} for unfinished sessions",
                self.config.data_dir.display()
            )
        })?;
        if !recovered.is_empty() {
            tracing::info!(count = recovered.len(), "finished interrupted sessions");
        }
        let feed = Feed {
            live: source.is_live(),
            fps: source.frame_rate(),
            description: source.describe(),
            dropped: Arc::new(AtomicU64::new(0)),
        };
        let (receiver, capture) =
            spawn_capture(source, self.config.queue_frames, stop, feed.dropped.clone());
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

    /// One lesson: a session folder filled from `frames` until the source ends or fails, or
    /// the lesson's time is up (the frame past it stays in `frames` for the next lesson).
    fn run_one_lesson(
        &mut self,
        frames: &mut Peekable<mpsc::Iter<'_, Result<Frame, SourceError>>>,
        feed: &Feed,
    ) -> Result<(LessonReport, LessonEnd)> {
        let start = humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string();
        let session = SessionDir::create(&self.config.data_dir, &self.config.desk_id, &start)
            .with_context(|| {
                format!(
                    "cannot create a session folder under {}",
                    self.config.data_dir.display()
                )
            })?;
        tracing::info!(session = %session.path.display(), source = %feed.description, "lesson starts");
        let dropped_before = feed.dropped.load(Ordering::Relaxed);
        let dropped = || feed.dropped.load(Ordering::Relaxed) - dropped_before;
        let mut recorder = self.config.record_video.then(|| {
            Recorder::spawn(
                session.file(session::VIDEO),
                feed.fps,
                self.config.keyframe_interval_s,
                self.config.queue_frames,
                feed.live,
            )
        });
        let _ = self.leds.set_fault(None);
        let _ = self.leds.show(None);
        let _ = self.leds.camera(true);

        let mut state = LessonState::new(self.config.smoothing_alpha);
        // A summary exists from the first moment, so even an early power cut leaves one.
        self.write_summaries(&session, &start, None, &state, 0, None)?;
        let overlay = Overlay::new();
        let refresh = Duration::from_secs(u64::from(self.config.summary_refresh_s));
        let mut next_refresh = refresh;
        let mut first_timestamp = None;
        let mut source_error = None;
        let mut ended = LessonEnd::SourceDone;
        loop {
            if let (Some(Ok(next)), Some(first), Some(length)) =
                (frames.peek(), first_timestamp, self.config.lesson_length())
            {
                if next.timestamp.saturating_sub(first) >= length {
                    ended = LessonEnd::TimeUp;
                    break;
                }
            }
            let frame = match frames.next() {
                None => break,
                Some(Ok(frame)) => frame,
                Some(Err(error)) => {
                    tracing::error!(%error, "frame source failed; ending the lesson with what was recorded");
                    source_error = Some(error.to_string());
                    let _ = self.leds.set_fault(Some(Fault::NoCamera));
                    break;
                }
            };
            let lesson_time = frame
                .timestamp
                .saturating_sub(*first_timestamp.get_or_insert(frame.timestamp));
            if let Some(heartbeat) = self.heartbeat.as_mut() {
                heartbeat();
            }
            let _ = self.leds.tick(frame.timestamp);
            let shown = self.analyse(&frame, lesson_time, &mut state)?;
            if let Some(recorder) = recorder.as_mut() {
                // statvfs every 16th frame is plenty: a frame adds tens of kB at most.
                let frames_seen = state.tally.faces() + state.tally.frames_without_face;
                if recorder.is_running() && frames_seen % 16 == 1 && self.low_on_space(&session) {
                    recorder.stop_for("stopped: free space fell under the configured floor");
                    let _ = self.leds.set_fault(Some(Fault::StorageFull));
                }
                if recorder.is_running() {
                    let mut image =
                        RgbImage::from_raw(frame.width as u32, frame.height as u32, frame.rgb)
                            .context("frame buffer does not match its size")?;
                    overlay.draw(&mut image, &shown.annotation(&state.tally));
                    recorder.send(image);
                }
            }
            if lesson_time >= next_refresh {
                next_refresh += refresh;
                let note = recorder.as_ref().and_then(Recorder::note);
                self.write_summaries(&session, &start, None, &state, dropped(), note.as_deref())?;
            }
        }
        let (video_frames, note) = match recorder {
            Some(recorder) => recorder.finish(),
            None => (0, Some("not recorded (record_video is off)".to_owned())),
        };
        let end = humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string();
        let summary = self.write_summaries(
            &session,
            &start,
            Some(&end),
            &state,
            dropped(),
            note.as_deref(),
        )?;
        let completion = match &source_error {
            Some(e) => format!("ended early: {e}"),
            None => "complete".to_owned(),
        };
        session
            .complete(&completion)
            .context("cannot write MANIFEST/COMPLETE")?;
        if ended == LessonEnd::SourceDone {
            let _ = self.leds.camera(false);
        }
        tracing::info!(session = %session.path.display(), impression = ?summary.impression, "lesson ends");
        let report = LessonReport {
            session: session.path,
            summary,
            video_frames,
            source_error,
        };
        Ok((report, ended))
    }

    /// Analyses one frame, `lesson_time` into the lesson.
    fn analyse(
        &mut self,
        frame: &Frame,
        lesson_time: Duration,
        state: &mut LessonState,
    ) -> Result<Shown> {
        let grey = frame.grey();
        let grey_frame = GreyFrame {
            width: frame.width,
            height: frame.height,
            pixels: &grey,
        };
        let groups = state.tracker.detect(
            &mut self.detector,
            grey_frame,
            self.config.track_face_frames,
        );
        let face = student_face(&groups);
        state.tracker.follow(face);
        let second = lesson_time.as_secs();
        let Some(face) = face else {
            state.tally.record_no_face();
            state.timeline.record(second, None);
            state.frames_without_face_in_a_row += 1;
            if state.frames_without_face_in_a_row >= self.config.no_face_reset_frames {
                state.smoother = Smoother::new(self.config.smoothing_alpha);
                let _ = self.leds.show(None);
            }
            return Ok(Shown {
                face: None,
                expression: None,
                impression: state.live_impression(),
            });
        };
        state.frames_without_face_in_a_row = 0;
        let probabilities = self.classifier.classify(grey_frame, face)?;
        let raw = top_expression(&probabilities);
        state.tally.record(raw);
        state.timeline.record(second, Some(raw.category()));
        let shown_expression = state.smoother.update(&probabilities);
        let shown_probability = state
            .smoother
            .current()
            .map_or(0.0, |p| p[shown_expression.label()]);
        let impression = state.live_impression();
        let _ = self.leds.show(impression);
        Ok(Shown {
            face: Some(face),
            expression: Some((shown_expression, shown_probability)),
            impression,
        })
    }

    fn low_on_space(&self, session: &SessionDir) -> bool {
        match fs4::available_space(&session.path) {
            Ok(bytes) => bytes < self.config.min_free_mib * 1024 * 1024,
            Err(_) => false,
        }
    }

    fn write_summaries(
        &self,
        session: &SessionDir,
        start: &str,
        end: Option<&str>,
        state: &LessonState,
        dropped: u64,
        video_note: Option<&str>,
    ) -> Result<Summary> {
        let summary = Summary::build(&SummaryInput {
            desk_id: &self.config.desk_id,
            lesson_start: start,
            lesson_end: end,
            tally: &state.tally,
            frames_dropped: dropped,
            model: &self.model_name,
            video_note,
        });
        let write = |name: &str, bytes: &[u8]| {
            write_atomically(&session.file(name), bytes)
                .with_context(|| format!("cannot write {name}"))
        };
        write(
            session::SUMMARY_JSON,
            serde_json::to_string_pretty(&summary)?.as_bytes(),
        )?;
        write(session::SUMMARY_TXT, summary.to_text().as_bytes())?;
        write(session::TIMELINE_CSV, state.timeline.to_csv().as_bytes())?;
        if let Err(error) = timeline_chart(&state.timeline, &session.file(session::TIMELINE_PNG)) {
            tracing::warn!(%error, "could not draw timeline.png");
        }
        Ok(summary)
    }
}

/// What the frame source is, for every lesson it feeds.
struct Feed {
    live: bool,
    fps: f64,
    description: String,
    /// Frames a live source had to drop (queue full), over all lessons.
    dropped: Arc<AtomicU64>,
}

/// Why a lesson closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum LessonEnd {
    /// The source ended, failed or was stopped: no more lessons.
    SourceDone,
    /// `lesson_minutes` passed; the next frame starts the next lesson.
    TimeUp,
}

/// Running state of one lesson.
struct LessonState {
    tally: Tally,
    timeline: Timeline,
    smoother: Smoother,
    frames_without_face_in_a_row: u32,
    tracker: FaceTracker,
}

impl LessonState {
    fn new(alpha: f32) -> Self {
        Self {
            tally: Tally::default(),
            timeline: Timeline::default(),
            smoother: Smoother::new(alpha),
            frames_without_face_in_a_row: 0,
            tracker: FaceTracker::default(),
        }
    }

    /// The impression of the smoothed probabilities: what the LEDs show right now.
    fn live_impression(&self) -> Option<Impression> {
        let p = self.smoother.current()?;
        let category = |c| {
            ekspresi_common::Expression::ALL
                .iter()
                .filter(|e| e.category() == c)
                .map(|e| p[e.label()])
                .sum::<f32>()
        };
        use ekspresi_common::Category::*;
        Some(
            if category(Positive) + category(Neutral) > category(Negative) {
                Impression::Good
            } else {
                Impression::Bad
            },
        )
    }
}

/// What one frame shows.
struct Shown {
    face: Option<Rect>,
    expression: Option<(ekspresi_common::Expression, f32)>,
    impression: Option<Impression>,
}

impl Shown {
    fn annotation(&self, tally: &Tally) -> Annotation {
        Annotation {
            face: self.face,
            expression: self.expression,
            percentages: tally.percentages(),
            impression: self.impression,
        }
    }
}

/// The student's face: the detection backed by the most raw hits, the larger on a tie.
/// Picking by size alone (the paper's "largest face") lets a big background false positive
/// win over a real face, as it does on the demo clip's astronaut frames.
fn student_face(groups: &[Group]) -> Option<Rect> {
    groups
        .iter()
        .max_by_key(|g| (g.neighbors, g.rect.area()))
        .map(|g| g.rect)
}

/// Reads the source on its own thread into a bounded queue.
fn spawn_capture(
    mut source: Box<dyn FrameSource>,
    capacity: usize,
    stop: Arc<AtomicBool>,
    dropped: Arc<AtomicU64>,
) -> (Receiver<Result<Frame, SourceError>>, JoinHandle<()>) {
    let (sender, receiver) = mpsc::sync_channel(capacity);
    let live = source.is_live();
    let handle = std::thread::spawn(move || {
        while !stop.load(Ordering::Relaxed) {
            let message = match source.next_frame() {
                Ok(Some(frame)) => Ok(frame),
                Ok(None) => break,
                Err(error) => Err(error),
            };
            let failed = message.is_err();
            if live && !failed {
                match sender.try_send(message) {
                    Ok(()) => {}
                    Err(TrySendError::Full(_)) => {
                        dropped.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(TrySendError::Disconnected(_)) => break,
                }
            } else if sender.send(message).is_err() {
                break;
            }
            if failed {
                break;
            }
        }
    });
    (receiver, handle)
}

/// The encoding thread and its queue.
struct Recorder {
    sender: Option<SyncSender<RgbImage>>,
    handle: Option<JoinHandle<u64>>,
    note: Arc<Mutex<Option<String>>>,
    live: bool,
}

impl Recorder {
    fn spawn(
        path: PathBuf,
        fps: f64,
        keyframe_interval_s: u32,
        capacity: usize,
        live: bool,
    ) -> Self {
        let (sender, receiver) = mpsc::sync_channel::<RgbImage>(capacity);
        let note = Arc::new(Mutex::new(None));
        let thread_note = note.clone();
        let keyframe_interval = ((fps * f64::from(keyframe_interval_s)).round() as u32).max(1);
        let handle = std::thread::spawn(move || {
            encode_all(&path, fps, keyframe_interval, &receiver, &thread_note)
        });
        Self {
            sender: Some(sender),
            handle: Some(handle),
            note,
            live,
        }
    }

    fn is_running(&self) -> bool {
        self.sender.is_some()
    }

    fn send(&mut self, image: RgbImage) {
        let Some(sender) = &self.sender else { return };
        let result = if self.live {
            match sender.try_send(image) {
                Err(TrySendError::Full(_)) => Ok(()), // a video frame dropped, analysis goes on
                Err(TrySendError::Disconnected(_)) => Err(()),
                Ok(()) => Ok(()),
            }
        } else {
            sender.send(image).map_err(|_| ())
        };
        if result.is_err() {
            // The encoder thread ended (it has left its reason in `note`).
            self.sender = None;
        }
    }

    fn stop_for(&mut self, reason: &str) {
        if self.sender.take().is_some() {
            if let Ok(mut note) = self.note.lock() {
                note.get_or_insert_with(|| reason.to_owned());
            }
            tracing::warn!(reason, "video recording stopped; analysis goes on");
        }
    }

    fn note(&self) -> Option<String> {
        self.note.lock().ok().and_then(|n| n.clone())
    }

    fn finish(mut self) -> (u64, Option<String>) {
        self.sender = None;
        let frames = self.handle.take().and_then(|h| h.join().ok()).unwrap_or(0);
        (frames, self.note())
    }
}

fn encode_all(
    path: &Path,
    fps: f64,
    keyframe_interval: u32,
    frames: &Receiver<RgbImage>,
    note: &Mutex<Option<String>>,
) -> u64 {
    let fail = |message: String| {
        tracing::error!(%message, "video recording failed; analysis goes on");
        if let Ok(mut note) = note.lock() {
            note.get_or_insert(message);
        }
    };
    let mut recorder: Option<VideoRecorder> = None;
    for image in frames.iter() {
        // H.264 needs even dimensions: drop a last odd row/column.
        let (w, h) = (image.width() as usize & !1, image.height() as usize & !1);
        if recorder.is_none() {
            match VideoRecorder::create(path, w, h, fps, keyframe_interval) {
                Ok(r) => recorder = Some(r),
                Err(e) => {
                    fail(format!("stopped: {e}"));
                    return 0;
                }
            }
        }
        let rgb = if (w, h) == (image.width() as usize, image.height() as usize) {
            image.into_raw()
        } else {
            image::imageops::crop_imm(&image, 0, 0, w as u32, h as u32)
                .to_image()
                .into_raw()
        };
        if let Some(r) = recorder.as_mut() {
            if let Err(e) = r.write_rgb(&rgb, w, h) {
                fail(format!("stopped after {} frames: {e}", r.frames()));
                return r.frames();
            }
        }
    }
    match recorder {
        Some(r) => match r.finish() {
            Ok(frames) => frames,
            Err(e) => {
                fail(format!("last fragment lost: {e}"));
                0
            }
        },
        None => 0,
    }
}
