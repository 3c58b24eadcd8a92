//! `ekspresi publish`, on the desk: follows the running session's `seconds.csv` and
//! publishes each finished window of its lesson (10 s by default) as a [`WindowCounts`].
//!
//! It runs as its own unit, with network access (like the upload unit); the camera unit
//! keeps `PrivateNetwork=yes`. It only *reads* the session's files, so the kiosk's lesson and
//! its files are the same with the broker up, down or not configured, and a broker that is
//! down never slows the lesson. A window that cannot be handed to the MQTT client at once
//! (its queue full while the broker is away) is dropped, not waited for: the live view is
//! about now. rumqttc reconnects by itself; we wait between attempts, doubling to 30 s.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use ekspresi_common::estimate::Calibration;
use rumqttc::{Client, Event, Packet, QoS};

use super::broker::{describe, options, read_secret, Connection};
use super::message::{counts_topic, status_topic, SecondCount, WindowCounts, SCHEMA};
use crate::config::KioskConfig;
use crate::record::seconds::{read_rows, SecondRow};
use crate::record::session::{COMPLETE, SECONDS_CSV, SUMMARY_JSON};
use crate::record::summary::Summary;

/// Seconds of lesson a window spans.
pub const WINDOW_SECONDS: u64 = 10;
/// Messages the MQTT client may hold while the broker is away.
const QUEUE: usize = 32;

/// Cuts one session's rows into windows, in order, each once.
#[derive(Debug)]
pub struct WindowCutter {
    session: String,
    model: String,
    calibration: Option<Calibration>,
    next_start: u64,
    sequence: u64,
}

impl WindowCutter {
    pub fn new(session: String, model: String, calibration: Option<Calibration>) -> Self {
        Self {
            session,
            model,
            // A window carries counts, so the class view corrects them by the confusions.
            calibration: calibration.map(Calibration::counting_only),
            next_start: 0,
            sequence: 0,
        }
    }

    /// The windows `rows` (the session's log so far) finish: those a later second has
    /// passed, and with `complete` (the lesson ended) the last one too.
    pub fn finished(&mut self, rows: &[SecondRow], complete: bool) -> Vec<WindowCounts> {
        let last = rows.last().map(|r| r.second);
        let mut windows = Vec::new();
        loop {
            let end = self.next_start.saturating_add(WINDOW_SECONDS);
            let passed = last.is_some_and(|s| s >= end);
            let tail = complete && last.is_some_and(|s| s >= self.next_start);
            if !(passed || tail) {
                return windows;
            }
            let seconds = if passed {
                WINDOW_SECONDS
            } else {
                last.map_or(0, |s| s - self.next_start + 1)
            };
            windows.push(self.window(rows, seconds));
            self.next_start = end;
            self.sequence += 1;
        }
    }

    fn window(&self, rows: &[SecondRow], seconds: u64) -> WindowCounts {
        let end = self.next_start + seconds;
        let per_second = rows
            .iter()
            .filter(|r| (self.next_start..end).contains(&r.second))
            .map(|r| {
                let mut count = SecondCount {
                    second: r.second,
                    no_face: r.no_face,
                    ..SecondCount::default()
                };
                for expression in ekspresi_common::Expression::ALL {
                    let n = r.faces[expression.label()];
                    match expression.category() {
                        ekspresi_common::Category::Positive => count.positive += n,
                        ekspresi_common::Category::Neutral => count.neutral += n,
                        ekspresi_common::Category::Negative => count.negative += n,
                    }
                }
                count
            })
            .collect();
        WindowCounts {
            schema: SCHEMA,
            session: self.session.clone(),
            sequence: self.sequence,
            window_start: self.next_start,
            seconds,
            per_second,
            model: self.model.clone(),
            calibration: self.calibration.clone(),
        }
    }
}

/// Publishes this desk's lessons until `stop` is set.
pub fn run(config: &KioskConfig, stop: &Arc<AtomicBool>) -> Result<()> {
    let settings = &config.publish;
    let address = settings
        .broker
        .as_deref()
        .context("no broker configured (publish.broker in the config)")?;
    let password = read_secret(&settings.password_file)?;
    let desk = config.desk_id.as_str();
    let connection = Connection {
        address,
        ca: &settings.ca,
        user: desk,
        password: &password,
        last_will: Some((status_topic(desk), "offline")),
    };
    let (client, mut events) = Client::new(options(&connection)?, QUEUE);
    let announcer = client.clone();
    let status = status_topic(desk);
    let watching = stop.clone();
    std::thread::spawn(move || {
        let mut wait = Duration::from_secs(1);
        for event in events.iter() {
            if watching.load(Ordering::Relaxed) {
                return;
            }
            match event {
                Ok(Event::Incoming(Packet::ConnAck(_))) => {
                    tracing::info!("connected to the broker");
                    wait = Duration::from_secs(1);
                    let _ = announcer.try_publish(&status, QoS::AtLeastOnce, true, "online");
                }
                Ok(_) => {}
                Err(error) => {
                    tracing::warn!(
                        "broker: {}; next attempt in {} s",
                        describe(&error),
                        wait.as_secs()
                    );
                    std::thread::sleep(wait);
                    wait = (wait * 2).min(Duration::from_secs(30));
                }
            }
        }
    });
    follow_sessions(config, &client, stop);
    let _ = client.try_publish(status_topic(desk), QoS::AtLeastOnce, true, "offline");
    let _ = client.try_disconnect();
    Ok(())
}

/// Once a second: the desk's newest session, its new finished windows published.
fn follow_sessions(config: &KioskConfig, client: &Client, stop: &Arc<AtomicBool>) {
    let desk_dir = config.data_dir.join("sessions").join(&config.desk_id);
    let topic = counts_topic(&config.desk_id);
    let mut current: Option<(PathBuf, WindowCutter)> = None;
    while !stop.load(Ordering::Relaxed) {
        if let Some(newest) = newest_session(&desk_dir) {
            if current.as_ref().is_none_or(|(dir, _)| *dir != newest) {
                current = cutter_for(&newest).map(|cutter| (newest, cutter));
            }
        }
        if let Some((dir, cutter)) = current.as_mut() {
            let complete = dir.join(COMPLETE).exists();
            let rows = read_rows(&dir.join(SECONDS_CSV)).unwrap_or_default();
            for window in cutter.finished(&rows, complete) {
                let payload = match serde_json::to_vec(&window) {
                    Ok(payload) => payload,
                    Err(error) => {
                        tracing::warn!(%error, "cannot encode a window");
                        continue;
                    }
                };
                if let Err(error) = client.try_publish(&topic, QoS::AtLeastOnce, false, payload) {
                    tracing::debug!(%error, sequence = window.sequence, "window dropped");
                }
            }
        }
        std::thread::sleep(Duration::from_secs(1));
    }
}

/// The desk's newest session folder (names are start times).
fn newest_session(desk_dir: &Path) -> Option<PathBuf> {
    std::fs::read_dir(desk_dir)
        .ok()?
        .filter_map(|e| e.ok())
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .map(|e| e.path())
        .max()
}

/// A cutter for the session in `dir`, its model and calibration from its summary (written
/// when the lesson opens); `None` until that summary exists.
fn cutter_for(dir: &Path) -> Option<WindowCutter> {
    use std::io::Read as _;
    let mut text = String::new();
    std::fs::File::open(dir.join(SUMMARY_JSON))
        .ok()?
        .take(1024 * 1024)
        .read_to_string(&mut text)
        .ok()?;
    let summary: Summary = serde_json::from_str(&text).ok()?;
    let session = dir.file_name()?.to_string_lossy().into_owned();
    Some(WindowCutter::new(
        session,
        summary.model,
        summary.calibration,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows(seconds: std::ops::Range<u64>) -> Vec<SecondRow> {
        seconds
            .map(|second| SecondRow {
                second,
                faces: [0, 0, 1, 2, 0, 0, 3],
                no_face: 1,
                probabilities: None,
            })
            .collect()
    }

    #[test]
    fn windows_are_cut_once_when_a_later_second_passes_them() {
        let mut cutter = WindowCutter::new("s".into(), "m".into(), None);
        assert!(
            cutter.finished(&rows(0..10), false).is_empty(),
            "second 10 not seen"
        );
        let first = cutter.finished(&rows(0..11), false);
        assert_eq!(first.len(), 1);
        assert_eq!((first[0].window_start, first[0].seconds), (0, 10));
        assert_eq!(first[0].per_second.len(), 10);
        let row = first[0].per_second[0];
        assert_eq!(
            (row.positive, row.neutral, row.negative, row.no_face),
            (2, 3, 1, 1)
        );
        // Again with more rows: only the new finished windows, numbered on.
        let more = cutter.finished(&rows(0..35), false);
        assert_eq!(more.iter().map(|w| w.sequence).collect::<Vec<_>>(), [1, 2]);
        // The lesson ended at second 34: the last, shorter window goes too.
        let tail = cutter.finished(&rows(0..35), true);
        assert_eq!((tail[0].window_start, tail[0].seconds), (30, 5));
        assert!(cutter.finished(&rows(0..35), true).is_empty());
        // A gap of seconds without rows still yields its window, empty.
        let mut gappy = WindowCutter::new("s".into(), "m".into(), None);
        let mut with_gap = rows(0..3);
        with_gap.extend(rows(25..26));
        let windows = gappy.finished(&with_gap, false);
        assert_eq!(windows.len(), 2);
        assert!(windows[1].per_second.is_empty());
    }
}
