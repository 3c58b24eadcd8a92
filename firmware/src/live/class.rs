//! The teacher's class state during a lesson: the desks' recent windows, in memory only,
//! and what may be shown of them — nothing until enough desks see a face (the privacy
//! floor), then the class's estimated shares, rounded to 5 %, with no desk named.
//!
//! Each desk weighs the same: its windows of the last [`LiveSettings::span`] are estimated
//! with its own model's calibration (the lesson estimator of the summaries,
//! [`ekspresi_common::estimate`]), and the class's shares are the mean of those estimates.
//! A desk contributes while it is online (its last will has not been published), its
//! latest window is fresh, and it saw a face in most of that window's seconds.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use ekspresi_common::estimate::{estimate, Correction, Estimate, SecondBlocks};
use serde::Serialize;

use super::message::{MessageError, WindowCounts};

/// The least `min_desks` a live view may be started with.
pub const LEAST_MIN_DESKS: usize = 5;
/// Most desks followed (a school's class is a few dozen; a broker's password file bounds it).
const MAX_DESKS: usize = 10_000;

/// What the live view shows and when.
#[derive(Debug, Clone, Copy)]
pub struct LiveSettings {
    /// Nothing is shown until at least this many desks contribute (≥ [`LEAST_MIN_DESKS`]).
    pub min_desks: usize,
    /// The recent lesson time each desk's shares are estimated over.
    pub span: Duration,
    /// A desk whose latest window is older than this does not contribute.
    pub fresh: Duration,
}

impl Default for LiveSettings {
    fn default() -> Self {
        Self {
            min_desks: 10,
            span: Duration::from_secs(120),
            fresh: Duration::from_secs(30),
        }
    }
}

/// What the page may show now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(tag = "state", rename_all = "lowercase")]
pub enum Snapshot {
    /// Fewer desks than the floor: nothing about the class.
    Waiting { contributing: usize, needed: usize },
    /// The class's estimated shares in percent, multiples of 5 summing to 100.
    Live {
        positive: u32,
        neutral: u32,
        negative: u32,
        desks: usize,
        /// The verdict could go either way within the models' error.
        close: bool,
    },
}

struct Received {
    at: Instant,
    window: WindowCounts,
    correction: Option<Correction>,
}

#[derive(Default)]
struct Desk {
    online: bool,
    windows: VecDeque<Received>,
}

/// The class, as the broker has told it.
pub struct ClassState {
    settings: LiveSettings,
    desks: HashMap<String, Desk>,
}

impl ClassState {
    pub fn new(settings: LiveSettings) -> Self {
        Self {
            settings,
            desks: HashMap::new(),
        }
    }

    /// A desk's status message (`online`, or its last will `offline`).
    pub fn status(&mut self, desk: &str, payload: &[u8]) {
        if let Some(entry) = self.entry(desk) {
            entry.online = payload == b"online";
        }
    }

    /// A desk's window, checked; refused ones change nothing.
    pub fn counts(&mut self, desk: &str, payload: &[u8], now: Instant) -> Result<(), MessageError> {
        let (window, correction) = WindowCounts::parse(payload)?;
        let keep = self.settings.span + self.settings.fresh;
        if let Some(entry) = self.entry(desk) {
            entry.online = true;
            entry.windows.push_back(Received {
                at: now,
                window,
                correction,
            });
            while entry
                .windows
                .front()
                .is_some_and(|w| now.duration_since(w.at) > keep)
            {
                entry.windows.pop_front();
            }
            // A desk publishing faster than a window every second is not a kiosk.
            while entry.windows.len() > 4 * keep.as_secs() as usize {
                entry.windows.pop_front();
            }
        }
        Ok(())
    }

    fn entry(&mut self, desk: &str) -> Option<&mut Desk> {
        if !self.desks.contains_key(desk) && self.desks.len() >= MAX_DESKS {
            return None;
        }
        Some(self.desks.entry(desk.to_owned()).or_default())
    }

    /// What may be shown at `now`.
    pub fn snapshot(&self, now: Instant) -> Snapshot {
        let estimates: Vec<Estimate> = self
            .desks
            .values()
            .filter_map(|desk| self.contribution(desk, now))
            .collect();
        let needed = self.settings.min_desks;
        match Estimate::mean(&estimates).filter(|_| estimates.len() >= needed) {
            None => Snapshot::Waiting {
                contributing: estimates.len(),
                needed,
            },
            Some(mean) => {
                let [positive, neutral, negative] = round_to_five(mean.shares);
                Snapshot::Live {
                    positive,
                    neutral,
                    negative,
                    desks: estimates.len(),
                    close: mean.verdict_within_error(),
                }
            }
        }
    }

    /// A desk's estimate over its recent windows, if it contributes now.
    fn contribution(&self, desk: &Desk, now: Instant) -> Option<Estimate> {
        let latest = desk.windows.back()?;
        let fresh = now.duration_since(latest.at) <= self.settings.fresh;
        let mostly_face = latest.window.face_seconds() * 2 > latest.window.seconds;
        if !(desk.online && fresh && mostly_face) {
            return None;
        }
        let blocks = desk
            .windows
            .iter()
            .filter(|w| now.duration_since(w.at) <= self.settings.span)
            .fold(SecondBlocks::default(), |all, w| {
                all.merged(&w.window.blocks())
            });
        estimate(&blocks, latest.correction.as_ref())
    }
}

/// Shares (fractions summing to 1) as percentages in steps of 5 that sum to 100: each
/// rounded down to a step, the remaining steps to the largest remainders.
pub fn round_to_five(shares: [f64; 3]) -> [u32; 3] {
    let steps = shares.map(|s| (s.clamp(0.0, 1.0) * 20.0).max(0.0));
    let mut whole = steps.map(|s| s.floor() as u32);
    let mut order = [0, 1, 2];
    order.sort_by(|&a, &b| (steps[b] - steps[b].floor()).total_cmp(&(steps[a] - steps[a].floor())));
    let mut missing = 20u32.saturating_sub(whole.iter().sum());
    for &k in order.iter().cycle().take(3) {
        if missing == 0 {
            break;
        }
        whole[k] += 1;
        missing -= 1;
    }
    whole.map(|w| w * 5)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::live::message::{SecondCount, SCHEMA};

    fn window(positive: u64, negative: u64, with_face: u64) -> Vec<u8> {
        let window = WindowCounts {
            schema: SCHEMA,
            session: "s".into(),
            sequence: 0,
            window_start: 0,
            seconds: 10,
            per_second: (0..10)
                .map(|second| {
                    let face = second < with_face;
                    SecondCount {
                        second,
                        positive: if face { positive } else { 0 },
                        neutral: 0,
                        negative: if face { negative } else { 0 },
                        no_face: if face { 0 } else { 5 },
                    }
                })
                .collect(),
            model: "m".into(),
            calibration: None,
        };
        serde_json::to_vec(&window).unwrap()
    }

    #[test]
    fn nothing_is_shown_below_the_floor_and_shares_are_rounded_above_it() {
        let now = Instant::now();
        let mut class = ClassState::new(LiveSettings {
            min_desks: 5,
            ..LiveSettings::default()
        });
        for desk in 0..4 {
            class
                .counts(&format!("d{desk}"), &window(3, 1, 10), now)
                .unwrap();
        }
        // A desk that saw a face in only 4 of 10 seconds does not count towards the floor.
        class.counts("d4", &window(3, 1, 4), now).unwrap();
        assert_eq!(
            class.snapshot(now),
            Snapshot::Waiting {
                contributing: 4,
                needed: 5
            }
        );
        class.counts("d5", &window(1, 3, 10), now).unwrap();
        // Four desks 75 % positive, one 25 %: mean 65 % positive, 35 % negative.
        assert_eq!(
            class.snapshot(now),
            Snapshot::Live {
                positive: 65,
                neutral: 0,
                negative: 35,
                desks: 5,
                close: false
            }
        );
        // A desk's last will takes it out; a stale desk drops out too.
        class.status("d0", b"offline");
        assert!(matches!(
            class.snapshot(now),
            Snapshot::Waiting {
                contributing: 4,
                ..
            }
        ));
        let later = now + Duration::from_secs(31);
        assert!(matches!(
            class.snapshot(later),
            Snapshot::Waiting {
                contributing: 0,
                ..
            }
        ));
        assert!(class.counts("d9", b"{}", now).is_err());
    }

    #[test]
    fn the_class_holds_steady_when_a_desk_or_two_join_or_leave() {
        // Twelve desks of a class reacting alike (each 70 % positive, give or take a face a
        // second): one or two joining or leaving moves no share by a 5 % step.
        let now = Instant::now();
        let mut class = ClassState::new(LiveSettings::default());
        for desk in 0..14u64 {
            let (positive, negative) = if desk % 2 == 0 { (7, 3) } else { (8, 3) };
            class
                .counts(&format!("d{desk:02}"), &window(positive, negative, 10), now)
                .unwrap();
        }
        let all = class.snapshot(now);
        class.status("d13", b"offline");
        let one_left = class.snapshot(now);
        class.status("d12", b"offline");
        let two_left = class.snapshot(now);
        let shares = |s: Snapshot| match s {
            Snapshot::Live {
                positive, negative, ..
            } => (positive, negative),
            Snapshot::Waiting { .. } => panic!("waiting: {s:?}"),
        };
        assert_eq!(shares(all), shares(one_left));
        assert_eq!(shares(all), shares(two_left));
    }

    #[test]
    fn rounded_shares_are_steps_of_five_summing_to_100() {
        assert_eq!(round_to_five([1.0 / 3.0; 3]), [35, 35, 30]);
        assert_eq!(round_to_five([0.62, 0.26, 0.12]), [65, 25, 10]);
        assert_eq!(round_to_five([1.0, 0.0, 0.0]), [100, 0, 0]);
        for shares in [[0.01, 0.01, 0.98], [0.5, 0.25, 0.25], [0.024, 0.476, 0.5]] {
            let r = round_to_five(shares);
            assert_eq!(r.iter().sum::<u32>(), 100, "{shares:?}: {r:?}");
            assert!(r.iter().all(|v| v % 5 == 0));
        }
    }
}
