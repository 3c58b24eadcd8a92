//! One lesson: a session folder filled frame by frame — [`Lesson::open`], [`Lesson::step`]
//! for every frame, [`Lesson::close`]. A step analyses the frame, counts it, shows the
//! lesson's impression on the LEDs, annotates the frame and hands it to the encoder with
//! its time, and refreshes the summaries when due.

use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use anyhow::{Context, Result};
use ekspresi_common::Expression;
use embedded_hal::digital::OutputPin;

use super::analysis::{Sighting, StudentTrack};
use super::capture::Feed;
use super::encoder::{EncoderSettings, EncoderThread, TimedImage, VideoTarget};
use super::Kiosk;
use crate::aggregate::{
    probability_units, top_expression, EvidenceFloor, LiveEstimate, Smoother, Tally,
};
use crate::config::VideoMode;
use crate::detect::FaceTracker;
use crate::detect::Rect;
use crate::devices::{Fault, Frame};
use crate::record::files::write_summaries;
use crate::record::overlay::{Annotation, Overlay};
use crate::record::privacy::blur_picture;
use crate::record::seconds::SecondLog;
use crate::record::session::{self, SessionDir};
use crate::record::summary::{LessonTimes, Summary, SummaryInput, Timeline};
use ekspresi_common::estimate::Correction;

/// What a finished lesson left behind.
#[derive(Debug)]
pub struct LessonReport {
    pub session: PathBuf,
    pub summary: Summary,
    pub video_frames: u64,
    /// Set when the source failed mid-lesson (the files are still complete).
    pub source_error: Option<String>,
}

/// A lesson in progress.
pub(crate) struct Lesson {
    session: SessionDir,
    /// The kiosk's clock when the lesson opened (its folder's name, a camera lesson's start).
    opened_at: SystemTime,
    counts: LessonCounts,
    tracker: FaceTracker,
    student: StudentTrack,
    video: Option<EncoderThread>,
    overlay: Overlay,
    first_timestamp: Option<Duration>,
    /// The source's time of the latest frame (the lesson's span, for a recording).
    last_timestamp: Option<Duration>,
    next_refresh: Duration,
    dropped_before: u64,
    /// What the last analysed frame showed, drawn on frames recorded without analysis.
    last_annotation: Option<Annotation>,
    /// Frames recorded without analysis (the analysis was behind a live camera).
    skipped: u64,
}

impl Lesson {
    /// Creates the session folder (with a first, empty summary, so even an early power cut
    /// leaves one) and starts the encoder.
    pub fn open<P: OutputPin>(kiosk: &mut Kiosk<P>, feed: &Feed) -> Result<Self> {
        kiosk.room_for_a_lesson();
        let config = &kiosk.config;
        let opened_at = SystemTime::now();
        let session = SessionDir::create(&config.data_dir, &config.desk_id, &rfc3339(opened_at))
            .with_context(|| {
                format!(
                    "cannot create a session folder under {}",
                    config.data_dir.display()
                )
            })?;
        tracing::info!(session = %session.path.display(), source = %feed.description, "lesson starts");
        let recipients = crate::seal::parse_recipients(&config.encrypt_to)
            .context("config field `encrypt_to`")?;
        let video = (config.video != VideoMode::Off).then(|| {
            let target = if recipients.is_empty() {
                VideoTarget::Plain(session.file(session::VIDEO))
            } else {
                VideoTarget::Sealed {
                    dir: session.path.clone(),
                    recipients: recipients.clone(),
                }
            };
            let settings = EncoderSettings {
                fps: feed.fps,
                keyframe_interval_s: config.keyframe_interval_s,
                queue_frames: config.queue_frames,
                live: feed.live,
            };
            EncoderThread::spawn(target, &settings)
        });
        let seconds = SecondLog::create(&session)
            .map_err(|error| tracing::warn!(%error, "no per-second log for this lesson"))
            .ok();
        let lesson = Self {
            counts: LessonCounts::new(config.smoothing_alpha, seconds),
            session,
            opened_at,
            tracker: FaceTracker::default(),
            student: StudentTrack::default(),
            video,
            overlay: Overlay::new(),
            first_timestamp: None,
            last_timestamp: None,
            next_refresh: refresh_period(kiosk),
            dropped_before: feed.dropped_so_far(),
            last_annotation: None,
            skipped: 0,
        };
        let _ = kiosk.leds.set_fault(None);
        let _ = kiosk.leds.show(
            lesson
                .counts
                .tally
                .impression(kiosk.config.evidence, kiosk.correction.as_ref()),
        );
        let _ = kiosk.leds.camera(true);
        kiosk.with_reserve("summaries", |kiosk| lesson.write(kiosk, feed, false, None))?;
        Ok(lesson)
    }

    /// True when a frame captured at `timestamp` belongs to the next lesson.
    pub fn is_over_at(&self, timestamp: Duration, length: Duration) -> bool {
        self.first_timestamp
            .is_some_and(|first| timestamp.saturating_sub(first) >= length)
    }

    /// Analyses, counts, shows and records one frame.
    pub fn step<P: OutputPin>(
        &mut self,
        kiosk: &mut Kiosk<P>,
        frame: Frame,
        feed: &Feed,
    ) -> Result<()> {
        let lesson_time = self.take_frame(kiosk, &frame);
        // The detector runs on rayon workers and tract under it: a panic there (a bug, or
        // a model or cascade that slipped past its checks) ends the lesson with an error,
        // printed as one line, never as a Rust panic with a backtrace.
        let (analysis, tracker, student) =
            (&mut kiosk.analysis, &mut self.tracker, &mut self.student);
        let sighting =
            ekspresi_common::guard::quietly(|| analysis.analyse(&frame, tracker, student))
                .map_err(|panic| anyhow::anyhow!("the frame analysis failed: {panic}"))??;
        let reset_after = kiosk.config.no_face_reset_frames;
        let now = self
            .counts
            .record(sighting.as_ref(), lesson_time.as_secs(), reset_after);
        let face = sighting.map(|s| s.face);
        let annotation =
            self.counts
                .annotate(face, now, kiosk.config.evidence, kiosk.correction.as_ref());
        let _ = kiosk.leds.show(annotation.impression);
        self.record_video(kiosk, frame, &annotation, lesson_time);
        self.last_annotation = Some(annotation);
        // The student's face box (x, width; -1 without one), for tests and field debugging.
        tracing::trace!(
            at_ms = lesson_time.as_millis() as u64,
            face_x = face.map_or(-1, |f| f.x),
            face_width = face.map_or(-1, |f| f.width),
            "frame analysed"
        );
        if lesson_time >= self.next_refresh {
            self.next_refresh += refresh_period(kiosk);
            let note = self.video.as_ref().and_then(EncoderThread::note);
            // A refresh that cannot be written (a full card) is retried at the next one and
            // at the lesson's end; the lesson goes on.
            if let Err(error) = self.write(kiosk, feed, false, note.as_deref()) {
                tracing::warn!(error = format!("{error:#}"), "summaries not refreshed");
            }
        }
        Ok(())
    }

    /// What every frame does first, analysed or not: its time in the lesson (the first
    /// frame's is zero), a watchdog beat and an LED tick.
    fn take_frame<P: OutputPin>(&mut self, kiosk: &mut Kiosk<P>, frame: &Frame) -> Duration {
        let first = *self.first_timestamp.get_or_insert(frame.timestamp());
        self.last_timestamp = Some(frame.timestamp());
        kiosk.beat();
        let _ = kiosk.leds.tick(frame.timestamp());
        frame.timestamp().saturating_sub(first)
    }

    /// Records a frame without analysing it, because newer frames are waiting (the analysis
    /// is behind a live camera): it keeps the video whole while the analysis catches up on
    /// the newest frame. It carries the last analysed frame's annotation and is counted in
    /// the summary's `frames_skipped`, never in the expression counts.
    pub fn record_only<P: OutputPin>(&mut self, kiosk: &mut Kiosk<P>, frame: Frame) {
        let lesson_time = self.take_frame(kiosk, &frame);
        self.skipped = self.skipped.saturating_add(1);
        let annotation = match self.last_annotation.clone() {
            Some(annotation) => annotation,
            None => {
                self.counts
                    .annotate(None, None, kiosk.config.evidence, kiosk.correction.as_ref())
            }
        };
        self.record_video(kiosk, frame, &annotation, lesson_time);
        tracing::trace!(
            at_ms = lesson_time.as_millis() as u64,
            "frame recorded, analysis skipped"
        );
    }

    /// Annotates `frame` and queues it for the encoder, unless recording has stopped (or
    /// stops now because the card is nearly full).
    fn record_video<P: OutputPin>(
        &mut self,
        kiosk: &mut Kiosk<P>,
        frame: Frame,
        annotation: &Annotation,
        lesson_time: Duration,
    ) {
        let Some(video) = self.video.as_mut() else {
            return;
        };
        // statvfs every 16th frame is plenty: a frame adds tens of kB at most.
        let due = self.counts.tally.frames() % 16 == 1;
        // Low: older lessons' videos go first (retention); only if that is not enough does
        // this lesson's video stop.
        if video.is_running()
            && due
            && kiosk.low_on_space()
            && !kiosk.make_room(Some(&self.session.path))
        {
            video.stop_for("stopped: free space fell under the configured floor");
            let _ = kiosk.leds.set_fault(Some(Fault::StorageFull));
        }
        // Whatever the floor is set to, the lesson's own files keep their room on the card:
        // checked every frame (one statvfs, microseconds), so the video stops right after
        // the fragment that crossed the margin.
        if video.is_running() && kiosk.card_nearly_full() {
            video.stop_for("stopped: the card filled up during the lesson (the lesson's summaries keep their room)");
            let _ = kiosk.leds.set_fault(Some(Fault::StorageFull));
        }
        if video.is_running() {
            let mut image = frame.into_image();
            if kiosk.config.video == VideoMode::Blurred {
                blur_picture(&mut image);
            }
            self.overlay.draw(&mut image, annotation);
            video.send(TimedImage {
                image,
                at: lesson_time,
            });
        }
    }

    /// Finishes the video and the summaries, then seals the folder (MANIFEST, COMPLETE).
    /// `source_error` says why the source stopped early; `last` turns the camera LED off.
    pub fn close<P: OutputPin>(
        mut self,
        kiosk: &mut Kiosk<P>,
        feed: &Feed,
        source_error: Option<String>,
        last: bool,
    ) -> Result<LessonReport> {
        let (video_frames, note) = match self.video.take() {
            Some(video) => video.finish(),
            None => (0, Some("not recorded (video is \"none\")".to_owned())),
        };
        self.counts.flush_seconds();
        let summary = kiosk.with_reserve("summaries", |kiosk| {
            self.write(kiosk, feed, true, note.as_deref())
        })?;
        let completion = match &source_error {
            Some(e) => format!("ended early: {e}"),
            None => "complete".to_owned(),
        };
        let session = &self.session;
        kiosk.with_reserve("MANIFEST", |kiosk| {
            session
                .complete_feeding(&completion, &mut || kiosk.beat())
                .context("cannot write MANIFEST/COMPLETE")
        })?;
        if last {
            let _ = kiosk.leds.camera(false);
        }
        tracing::info!(session = %self.session.path.display(), impression = ?summary.impression, "lesson ends");
        Ok(LessonReport {
            session: self.session.path,
            summary,
            video_frames,
            source_error,
        })
    }

    /// The lesson's start, its end once `closing`, and what they are read from: a camera's
    /// lesson runs on the kiosk's clock; a recording's spans its own frames' times, from its
    /// creation time when it has one (else from when it was replayed, said so).
    fn times(&self, feed: &Feed, closing: bool) -> (String, Option<String>, LessonTimes) {
        if feed.live {
            return (
                rfc3339(self.opened_at),
                closing.then(|| rfc3339(SystemTime::now())),
                LessonTimes::Camera,
            );
        }
        let first = self.first_timestamp.unwrap_or_default();
        let frames_span = self.last_timestamp.unwrap_or(first).saturating_sub(first);
        // The last frame lasts one frame period (a sane rate only; sources check theirs).
        let period = (feed.fps.is_finite() && (0.1..=240.0).contains(&feed.fps))
            .then(|| Duration::from_secs_f64(1.0 / feed.fps))
            .filter(|_| self.last_timestamp.is_some())
            .unwrap_or_default();
        let (start, times) = match feed.recorded_at {
            Some(began) => (began + first, LessonTimes::Recording),
            None => (self.opened_at, LessonTimes::RecordingStartUnknown),
        };
        // To the millisecond: 48 frames at 6 fps last 8 s, not 7.999999.
        // (Both terms are bounded by limits::MAX_LESSON, so the cast cannot truncate.)
        let span =
            Duration::from_millis(((frames_span + period).as_secs_f64() * 1000.0).round() as u64);
        let end = closing.then(|| rfc3339(start + span));
        (rfc3339(start), end, times)
    }

    fn write<P: OutputPin>(
        &self,
        kiosk: &Kiosk<P>,
        feed: &Feed,
        closing: bool,
        video_note: Option<&str>,
    ) -> Result<Summary> {
        let (start, end, times) = self.times(feed, closing);
        let input = SummaryInput {
            desk_id: &kiosk.config.desk_id,
            lesson_id: kiosk.config.lesson_id.as_deref(),
            lesson_start: &start,
            lesson_end: end.as_deref(),
            tally: &self.counts.tally,
            floor: kiosk.config.evidence,
            frames_dropped: feed.dropped_so_far().saturating_sub(self.dropped_before),
            frames_skipped: self.skipped,
            model: &kiosk.model_name,
            model_accuracy: kiosk.model_accuracy,
            calibration: kiosk.calibration.as_ref(),
            video_note,
            times,
        };
        write_summaries(&self.session, &input, &self.counts.timeline)
    }
}

/// The lesson's counts (in memory, and durably per second) and the momentary expression.
struct LessonCounts {
    tally: Tally,
    timeline: Timeline,
    /// `seconds.csv`; `None` once a write to it failed (the lesson goes on without it).
    seconds: Option<SecondLog>,
    smoother: Smoother,
    frames_without_face_in_a_row: u32,
    /// The estimate the LEDs and the overlay show, refreshed once a second.
    live: LiveEstimate,
}

impl LessonCounts {
    fn new(alpha: f32, seconds: Option<SecondLog>) -> Self {
        Self {
            tally: Tally::default(),
            timeline: Timeline::default(),
            seconds,
            smoother: Smoother::new(alpha),
            frames_without_face_in_a_row: 0,
            live: LiveEstimate::default(),
        }
    }

    /// What the frame shows: the face, the moment and the lesson so far (its estimate
    /// refreshed once a second), judged against `floor`.
    fn annotate(
        &mut self,
        face: Option<Rect>,
        now: Option<(Expression, f32)>,
        floor: EvidenceFloor,
        correction: Option<&Correction>,
    ) -> Annotation {
        let lesson = self.live.refresh(&self.tally, correction);
        Annotation::of(face, now, lesson, self.tally.evidence(floor))
    }

    /// The one place a frame is counted: the tally, the timeline and `seconds.csv`, each
    /// face with the model's probabilities.
    fn count(&mut self, second: u64, face: Option<(Expression, [u64; 7])>) {
        match face {
            Some((expression, units)) => {
                self.tally
                    .record_with_probabilities(expression, second, Some(units))
            }
            None => self.tally.record_no_face(),
        }
        self.timeline.record_face(second, face);
        if let Some(Err(error)) = self.seconds.as_mut().map(|log| log.record(second, face)) {
            // A failed write (a full card) ends the log, not the lesson.
            tracing::warn!(%error, "per-second log stopped");
            self.seconds = None;
        }
    }

    /// Appends the last second to `seconds.csv` (at the lesson's end).
    fn flush_seconds(&mut self) {
        if let Some(Err(error)) = self.seconds.as_mut().map(SecondLog::flush) {
            tracing::warn!(%error, "per-second log: the last second is not in it");
        }
    }

    /// Counts one analysed frame, `second` into the lesson; returns the momentary (smoothed)
    /// expression and its probability, forgotten after `reset_after` frames without a face.
    fn record(
        &mut self,
        sighting: Option<&Sighting>,
        second: u64,
        reset_after: u32,
    ) -> Option<(Expression, f32)> {
        let Some(sighting) = sighting else {
            self.count(second, None);
            self.frames_without_face_in_a_row = self.frames_without_face_in_a_row.saturating_add(1);
            if self.frames_without_face_in_a_row >= reset_after {
                self.smoother.reset();
            }
            return None;
        };
        self.frames_without_face_in_a_row = 0;
        let expression = top_expression(&sighting.probabilities);
        self.count(
            second,
            Some((expression, probability_units(&sighting.probabilities))),
        );
        let shown = self.smoother.update(&sighting.probabilities);
        let probability = self.smoother.current().map_or(0.0, |p| p[shown.label()]);
        Some((shown, probability))
    }
}

fn refresh_period<P: OutputPin>(kiosk: &Kiosk<P>) -> Duration {
    Duration::from_secs(u64::from(kiosk.config.summary_refresh_s))
}

fn rfc3339(time: SystemTime) -> String {
    humantime::format_rfc3339_seconds(time).to_string()
}
