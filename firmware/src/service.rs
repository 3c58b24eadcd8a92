//! `kiosk run`: the all-day service. Opens the camera, runs lessons until told to stop
//! (SIGTERM from systemd, Ctrl-C), and keeps going through camera outages: while there is no
//! camera the camera LED blinks and the kiosk retries.
//!
//! It talks to systemd through `sd_notify` (READY, STATUS, STOPPING) and feeds the watchdog
//! from the frame loop, so a pipeline that stops producing frames gets restarted. Outside
//! systemd these notifications are no-ops.

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
    let mut kiosk = Kiosk::new(config, model, leds)?;
    let watchdog = Watchdog::from_env();
    let frame_watchdog = watchdog.clone();
    kiosk.on_frame(move || frame_watchdog.feed());
    notify(&[sd_notify::NotifyState::Ready]);
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
