//! The school's bell schedule: when the camera may run and what each lesson is called.
//!
//! With a timetable in the config, `kiosk run` captures **only during lessons** — no frame
//! outside them, the camera closed and its LED off — and each lesson is its own session
//! carrying the timetable's lesson id, so every desk agrees on what "the lesson" is for the
//! class report and the live view. Without one, the kiosk records from start to stop as
//! before.
//!
//! Times are the Pi's local wall-clock time (its time zone, daylight saving included, from
//! chrono's `Local`). The Pi has no battery clock: until the clock is set by NTP the
//! timetable cannot be trusted, so no lesson starts while [`clock_is_trusted`] says no.

use serde::{Deserialize, Serialize};

use crate::config::is_safe_name;

/// Most lessons a timetable may list (a week of ten lessons a day is 50).
pub const MAX_LESSONS: usize = 200;

/// One line of the timetable as the config writes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TimetableEntry {
    /// Days it is held: `mon` … `sun`.
    pub days: Vec<String>,
    /// Start and end, local time, `HH:MM` or `HH:MM:SS`.
    pub start: String,
    pub end: String,
    /// The lesson's id (the class report and the live view group by it).
    pub lesson_id: String,
}

/// A lesson slot, checked: days as a mask (Monday first), times in seconds of the day.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Slot {
    days: [bool; 7],
    start: u32,
    end: u32,
    pub lesson_id: String,
}

/// A moment of the local week: the day (0 Monday … 6 Sunday), the second of that day and
/// the nanoseconds into that second.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WeekTime {
    pub weekday: usize,
    pub second: u32,
    pub nanos: u32,
}

impl WeekTime {
    /// Now, on the Pi's local clock.
    pub fn now() -> WeekTime {
        use chrono::{Datelike, Timelike};
        let now = chrono::Local::now();
        WeekTime {
            weekday: now.weekday().num_days_from_monday() as usize,
            second: now.num_seconds_from_midnight(),
            // A leap second shows as nanoseconds past 1e9: counted as the second's end.
            nanos: now.nanosecond().min(999_999_999),
        }
    }
}

const DAY: u32 = 24 * 60 * 60;
const DAYS: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

/// The checked timetable.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Timetable {
    slots: Vec<Slot>,
}

impl Timetable {
    /// Checks `entries`: known days, times of the day with the start before the end, safe
    /// lesson ids, and no two lessons overlapping on a day.
    pub fn new(entries: &[TimetableEntry]) -> Result<Timetable, String> {
        if entries.len() > MAX_LESSONS {
            return Err(format!("more than {MAX_LESSONS} lessons"));
        }
        let mut slots = Vec::with_capacity(entries.len());
        for entry in entries {
            let at = |what: &str| format!("lesson {:?}: {what}", entry.lesson_id);
            if !is_safe_name(&entry.lesson_id) {
                return Err(at("lesson_id: 1..64 letters, digits, '-' or '_'"));
            }
            let mut days = [false; 7];
            for day in &entry.days {
                let index = DAYS
                    .iter()
                    .position(|d| d.eq_ignore_ascii_case(day))
                    .ok_or_else(|| at(&format!("day {day:?} is not one of mon … sun")))?;
                days[index] = true;
            }
            if !days.contains(&true) {
                return Err(at("no days"));
            }
            let start =
                parse_time(&entry.start).ok_or_else(|| at("start: use HH:MM or HH:MM:SS"))?;
            let end = parse_time(&entry.end).ok_or_else(|| at("end: use HH:MM or HH:MM:SS"))?;
            if start >= end {
                return Err(at(
                    "ends before it starts (a lesson ends on the day it starts)",
                ));
            }
            slots.push(Slot {
                days,
                start,
                end,
                lesson_id: entry.lesson_id.clone(),
            });
        }
        for (i, a) in slots.iter().enumerate() {
            for b in &slots[i + 1..] {
                let same_day = (0..7).any(|d| a.days[d] && b.days[d]);
                if same_day && a.start < b.end && b.start < a.end {
                    return Err(format!(
                        "lessons {:?} and {:?} overlap",
                        a.lesson_id, b.lesson_id
                    ));
                }
            }
        }
        Ok(Timetable { slots })
    }

    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    /// The lesson running at `now` and the time left of it.
    pub fn current(&self, now: WeekTime) -> Option<(&Slot, std::time::Duration)> {
        self.slots
            .iter()
            .find(|s| s.days[now.weekday] && s.start <= now.second && now.second < s.end)
            .map(|s| {
                let whole = std::time::Duration::from_secs(u64::from(s.end - now.second));
                (
                    s,
                    whole.saturating_sub(std::time::Duration::from_nanos(now.nanos.into())),
                )
            })
    }

    /// Seconds from `now` to the next lesson's start within a week (`None`: no lessons).
    pub fn until_next(&self, now: WeekTime) -> Option<u32> {
        let mut best: Option<u32> = None;
        for slot in &self.slots {
            for ahead in 0..8u32 {
                let day = (now.weekday + ahead as usize) % 7;
                if !slot.days[day] {
                    continue;
                }
                let at = ahead * DAY + slot.start;
                if at > now.second {
                    let wait = at - now.second;
                    best = Some(best.map_or(wait, |b| b.min(wait)));
                    break;
                }
            }
        }
        best
    }
}

/// `HH:MM` or `HH:MM:SS` as seconds of the day.
fn parse_time(text: &str) -> Option<u32> {
    let parts: Vec<&str> = text.split(':').collect();
    if !(2..=3).contains(&parts.len()) || parts.iter().any(|p| p.len() != 2) {
        return None;
    }
    let numbers: Vec<u32> = parts
        .iter()
        .map(|p| p.parse().ok())
        .collect::<Option<_>>()?;
    let (hours, minutes, seconds) = (numbers[0], numbers[1], *numbers.get(2).unwrap_or(&0));
    (hours < 24 && minutes < 60 && seconds < 60).then_some(hours * 3600 + minutes * 60 + seconds)
}

/// Whether the wall clock can be trusted for the timetable: a plausible year, and, where
/// systemd-timesyncd runs, its "synchronized" flag set (a Pi without a battery clock boots
/// with the last saved time until NTP answers).
pub fn clock_is_trusted() -> bool {
    use chrono::Datelike;
    let plausible = chrono::Local::now().year() >= 2025;
    let timesyncd = std::path::Path::new("/run/systemd/timesync");
    let synchronized = !timesyncd.exists() || timesyncd.join("synchronized").exists();
    plausible && synchronized
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(days: &[&str], start: &str, end: &str, id: &str) -> TimetableEntry {
        TimetableEntry {
            days: days.iter().map(|d| d.to_string()).collect(),
            start: start.into(),
            end: end.into(),
            lesson_id: id.into(),
        }
    }

    #[test]
    fn the_lesson_now_and_the_wait_for_the_next() {
        let timetable = Timetable::new(&[
            entry(&["mon", "wed"], "08:30", "09:15", "maths"),
            entry(&["mon"], "09:25", "10:10:30", "physics"),
        ])
        .unwrap();
        let monday = |second| WeekTime {
            weekday: 0,
            second,
            nanos: 0,
        };
        let (slot, left) = timetable.current(monday(8 * 3600 + 40 * 60)).unwrap();
        assert_eq!(
            (slot.lesson_id.as_str(), left.as_secs()),
            ("maths", 35 * 60)
        );
        let late = WeekTime {
            nanos: 250_000_000,
            ..monday(9 * 3600 + 14 * 60 + 59)
        };
        assert_eq!(timetable.current(late).unwrap().1.as_millis(), 750);
        assert!(
            timetable.current(monday(9 * 3600 + 20 * 60)).is_none(),
            "the break"
        );
        assert_eq!(
            timetable.until_next(monday(9 * 3600 + 20 * 60)),
            Some(5 * 60)
        );
        // After Monday's last lesson, Wednesday's maths: 1 day + 22 h 19 min 30 s ahead.
        let after = monday(10 * 3600 + 10 * 60 + 30);
        assert!(
            timetable.current(after).is_none(),
            "the end is not in the lesson"
        );
        assert_eq!(
            timetable.until_next(after),
            Some(DAY + 22 * 3600 + 19 * 60 + 30)
        );
        // Sunday evening: Monday's first lesson.
        let sunday = WeekTime {
            weekday: 6,
            second: 20 * 3600,
            nanos: 0,
        };
        assert_eq!(
            timetable.until_next(sunday),
            Some(4 * 3600 + 8 * 3600 + 30 * 60)
        );
        assert_eq!(Timetable::default().until_next(sunday), None);
    }

    #[test]
    fn bad_timetables_are_refused_with_the_lesson_named() {
        for (entries, reason) in [
            (vec![entry(&["mon"], "09:00", "08:00", "a")], "ends before"),
            (vec![entry(&["mon"], "25:00", "26:00", "a")], "start"),
            (vec![entry(&["funday"], "08:00", "09:00", "a")], "funday"),
            (vec![entry(&[], "08:00", "09:00", "a")], "no days"),
            (vec![entry(&["mon"], "08:00", "09:00", "../x")], "lesson_id"),
            (
                vec![
                    entry(&["mon", "tue"], "08:00", "09:00", "a"),
                    entry(&["tue"], "08:30", "09:30", "b"),
                ],
                "overlap",
            ),
            (vec![entry(&["mon"], "8:00", "09:00", "a")], "HH:MM"),
        ] {
            let error = Timetable::new(&entries).unwrap_err();
            assert!(error.contains(reason), "{error} (wanted {reason})");
        }
    }
}
