//! `kiosk run`: the all-day service. Opens the camera, runs lessons until told to stop
//! (SIGTERM from systemd, Ctrl-C), and keeps going through camera outages: while there is no
//! camera the camera LED blinks and the kiosk retries.
//!
//! It talks to systemd through `sd_notify` (READY, STATUS, STOPPING) and feeds the watchdog
//! from the frame loop, so a pipeline that stops producing frames gets restarted. Outside
//! systemd these notifications are no-ops.
//!
//! With a timetable ([`crate::timetable`]) the camera is opened only for each lesson and
//! closed at its end (camera LED off between lessons); each lesson is its own session with
//! the timetable's lesson id. Until the clock is trusted (NTP), no lesson starts.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Result;
use embedded_hal::digital::OutputPin;

use crate::board::Board;
use crate::config::KioskConfig;
use crate::devices::Fault;
use crate::pipeline::Kiosk;
use crate::timetable::{clock_is_trusted, Timetable, WeekTime};

/// How long to wait (blinking) before trying a missing camera again.
const CAMERA_RETRY: Duration = Duration::from_secs(5);

/// Runs lessons from `board`'s camera until `stop` is set.
pub fn run<P: OutputPin>(
    board: &impl Board,
    config: KioskConfig,
    model: PathBuf,
    leds: crate::devices::StatusLeds<P>,
    stop: Arc<AtomicBool>,
) -> Result<()> {
    let camera_config = config.camera.clone();
    let timetable = Timetable::new(&config.timetable).map_err(anyhow::Error::msg)?;
    let mut kiosk = Kiosk::new(config, model, leds)?;
    let watchdog = Watchdog::from_env();
    let frame_watchdog = watchdog.clone();
    kiosk.on_frame(move || frame_watchdog.feed());
    notify(&[sd_notify::NotifyState::Ready]);
    if !timetable.is_empty() {
        return run_timetable(
            board,
            &camera_config,
            &mut kiosk,
            &timetable,
            &stop,
            &watchdog,
        );
    }
    while !stop.load(Ordering::Relaxed) {
        match board.open_camera(&camera_config) {
            Ok(source) => {
                notify(&[sd_notify::NotifyState::Status("recording a lesson")]);
                let reports = kiosk.run_lessons(source, stop.clone())?;
                for report in &reports {
                    tracing::info!(session = %report.session.display(), "session closed");
                }
                if let Some(error) = reports.last().and_then(|r| r.source_error.as_ref()) {
                    tracing::error!(%error, "camera failed; retrying");
                    wait_blinking(&mut kiosk, &stop, &watchdog);
                }
            }
            Err(error) => {
                tracing::error!(%error, "no camera; retrying in {CAMERA_RETRY:?}");
                notify(&[sd_notify::NotifyState::Status(&format!(
                    "no camera: {error}"
                ))]);
                wait_blinking(&mut kiosk, &stop, &watchdog);
            }
        }
    }
    notify(&[sd_notify::NotifyState::Stopping]);
    let _ = kiosk.leds().off();
    Ok(())
}

/// Lessons by the timetable: the camera open only from a lesson's start to its end.
fn run_timetable<P: OutputPin>(
    board: &impl Board,
    camera_config: &crate::config::CameraConfig,
    kiosk: &mut Kiosk<P>,
    timetable: &Timetable,
    stop: &Arc<AtomicBool>,
    watchdog: &Watchdog,
) -> Result<()> {
    let mut said_clock = false;
    while !stop.load(Ordering::Relaxed) {
        watchdog.feed();
        if !clock_is_trusted() {
            if !said_clock {
                tracing::warn!("the clock is not synchronised yet: no lesson starts until it is");
                notify(&[sd_notify::NotifyState::Status(
                    "waiting for the clock (NTP)",
                )]);
                said_clock = true;
            }
            std::thread::sleep(Duration::from_millis(500));
            continue;
        }
        let Some((slot, left)) = timetable.current(WeekTime::now()) else {
            let _ = kiosk.leds().camera(false);
            notify(&[sd_notify::NotifyState::Status(
                "between lessons (camera closed)",
            )]);
            std::thread::sleep(Duration::from_millis(200));
            continue;
        };
        let lesson_id = slot.lesson_id.clone();
        let source = match board.open_camera(camera_config) {
            Ok(source) => source,
            Err(error) => {
                tracing::error!(%error, "no camera; retrying in {CAMERA_RETRY:?}");
                wait_blinking(kiosk, stop, watchdog);
                continue;
            }
        };
        tracing::info!(lesson = %lesson_id, seconds_left = left.as_secs(), "lesson starts");
        notify(&[sd_notify::NotifyState::Status(&format!(
            "recording {lesson_id}"
        ))]);
        kiosk.set_lesson_id(Some(lesson_id));
        let lesson_stop = stop_at(stop.clone(), Instant::now() + left);
        let reports = kiosk.run_lessons(source, lesson_stop)?;
        // The source is dropped here: the camera is closed until the next lesson.
        let _ = kiosk.leds().camera(false);
        for report in &reports {
            tracing::info!(session = %report.session.display(), "session closed");
        }
        if let Some(error) = reports.last().and_then(|r| r.source_error.as_ref()) {
            tracing::error!(%error, "camera failed; retrying");
            wait_blinking(kiosk, stop, watchdog);
        }
    }
    Ok(())
}

/// A flag set at `deadline`, or as soon as `stop` is.
fn stop_at(stop: Arc<AtomicBool>, deadline: Instant) -> Arc<AtomicBool> {
    let flag = Arc::new(AtomicBool::new(false));
    let setter = flag.clone();
    std::thread::spawn(move || {
        while Instant::now() < deadline
            && !stop.load(Ordering::Relaxed)
            && !setter.load(Ordering::Relaxed)
        {
            std::thread::sleep(Duration::from_millis(20));
        }
        setter.store(true, Ordering::Relaxed);
    });
    flag
}

fn wait_blinking<P: OutputPin>(kiosk: &mut Kiosk<P>, stop: &AtomicBool, watchdog: &Watchdog) {
    let started = Instant::now();
    let _ = kiosk.leds().camera(false);
    let _ = kiosk.leds().set_fault(Some(Fault::NoCamera));
    while started.elapsed() < CAMERA_RETRY && !stop.load(Ordering::Relaxed) {
        let _ = kiosk.leds().tick(started.elapsed());
        watchdog.feed();
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn notify(state: &[sd_notify::NotifyState]) {
    if let Err(error) = sd_notify::notify(state) {
        tracing::debug!(%error, "sd_notify failed");
    }
}

/// Feeds systemd's watchdog at most twice per watchdog period.
#[derive(Clone)]
struct Watchdog {
    period: Option<Duration>,
    last_fed: Arc<std::sync::Mutex<Option<Instant>>>,
}

impl Watchdog {
    fn from_env() -> Self {
        let period = sd_notify::watchdog_enabled();
        if let Some(period) = period {
            tracing::info!(?period, "systemd watchdog enabled");
        }
        Self {
            period,
            last_fed: Arc::default(),
        }
    }

    fn feed(&self) {
        let Some(period) = self.period else { return };
        let Ok(mut last_fed) = self.last_fed.lock() else {
            return;
        };
        if last_fed.is_none_or(|t| t.elapsed() >= period / 2) {
            notify(&[sd_notify::NotifyState::Watchdog]);
            *last_fed = Some(Instant::now());
        }
    }
}
