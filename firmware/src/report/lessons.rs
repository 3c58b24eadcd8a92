//! Sessions into lessons, and a lesson into what the teacher reads: a row per desk and the
//! class's reactions minute by minute.
//!
//! **Grouping.** Sessions are one lesson when their times overlap (chained: a desk that
//! joined late still overlaps the others), and never when their `lesson_id`s differ. A desk
//! with several sessions in one lesson (a restart, a power cut) gets one row: its seconds
//! joined, estimated by the one estimator ([`ekspresi_common::estimate::estimate`], corrected
//! for the desk's model) and judged again by the one rule ([`crate::aggregate::verdict`]).
//!
//! **The class's minute.** For each minute of the lesson: each desk's estimated positive /
//! neutral / negative shares in that minute, averaged over the desks that saw a face in it
//! (one desk one voice, as for the class verdict), with the mean's 90 % interval, and how
//! many desks those were.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use serde::Serialize;

use ekspresi_common::estimate::{estimate_with_parts, Correction, Estimate, SecondBlocks};

use super::scan::{for_each_second, SessionEntry};
use crate::aggregate::{
    add_second, class_impression, verdict, CategoryCounts, Evidence, EvidenceFloor, Impression,
};
use crate::record::summary::{Estimated, Intervals};

/// Sessions of one lesson, by start.
pub struct LessonGroup {
    pub lesson_id: Option<String>,
    pub start: SystemTime,
    pub end: SystemTime,
    pub sessions: Vec<SessionEntry>,
}

impl LessonGroup {
    /// A folder name: the start (UTC, file-safe), after the lesson id if there is one.
    pub fn key(&self) -> String {
        let start = humantime::format_rfc3339_seconds(self.start)
            .to_string()
            .replace(':', "-");
        match &self.lesson_id {
            Some(id) => format!("{id}-{start}"),
            None => start,
        }
    }
}

/// Groups sessions into lessons, ordered by lesson id then start.
pub fn group(mut sessions: Vec<SessionEntry>) -> Vec<LessonGroup> {
    sessions.sort_by(|a, b| (&a.lesson_id, a.start).cmp(&(&b.lesson_id, b.start)));
    let mut lessons: Vec<LessonGroup> = Vec::new();
    for session in sessions {
        match lessons.last_mut() {
            Some(lesson) if lesson.lesson_id == session.lesson_id && session.start < lesson.end => {
                lesson.end = lesson.end.max(session.end);
                lesson.sessions.push(session);
            }
            _ => lessons.push(LessonGroup {
                lesson_id: session.lesson_id.clone(),
                start: session.start,
                end: session.end,
                sessions: vec![session],
            }),
        }
    }
    lessons
}

/// One desk's row in a lesson.
#[derive(Debug, Clone, Serialize)]
pub struct DeskRow {
    pub desk_id: String,
    pub sessions: usize,
    pub frames_analysed: u64,
    pub frames_with_face: u64,
    pub face_seconds: u64,
    /// Faces as the model classified them.
    pub counts: CategoryCounts,
    /// The estimated shares (0 when no face).
    pub positive_percent: f64,
    pub neutral_percent: f64,
    pub negative_percent: f64,
    /// Their 90 % intervals; how they were estimated; whether the verdict is within the
    /// error (`None` when no face).
    pub estimated: Option<Estimated>,
    pub impression: Impression,
}

/// The class in one minute of the lesson.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct ClassMinute {
    pub minute: u64,
    /// Desks whose session covered this minute.
    pub desks_present: usize,
    /// Desks that saw a face in it; the shares are over these (null when none).
    pub desks_with_face: usize,
    pub positive_percent: Option<f64>,
    pub neutral_percent: Option<f64>,
    pub negative_percent: Option<f64>,
    /// The 90 % intervals of the three means.
    pub interval_90: Option<Intervals>,
}

/// A lesson, read and summed.
#[derive(Debug, Clone, Serialize)]
pub struct LessonReport {
    pub key: String,
    pub lesson_id: Option<String>,
    pub start: String,
    pub end: String,
    pub desks: Vec<DeskRow>,
    pub class_impression: Impression,
    /// Mean estimated shares over the desks with a verdict (null when none has one).
    pub class_positive_percent: Option<f64>,
    pub class_neutral_percent: Option<f64>,
    pub class_negative_percent: Option<f64>,
    /// Their 90 % intervals, the method, and whether the class verdict is within the error.
    pub class_estimated: Option<Estimated>,
    pub minutes: Vec<ClassMinute>,
}

/// Per desk: counts summed over its sessions, and per-minute counts.
#[derive(Default)]
struct DeskSum {
    sessions: usize,
    frames_analysed: u64,
    frames_with_face: u64,
    face_seconds: u64,
    counts: CategoryCounts,
    floor: Option<EvidenceFloor>,
    /// The correction of the desk's first session with one (a desk keeps its model).
    correction: Option<Correction>,
    /// Every second's category counts (and probabilities), as the estimator keeps them,
    /// per minute of the lesson; `None` where no session of the desk covered it. The desk's
    /// lesson is its minutes together.
    minutes: Vec<Option<SecondBlocks>>,
}

impl DeskSum {
    /// The desk's estimate over the lesson, and in each of its minutes.
    fn estimates(&self) -> DeskEstimates {
        let (lesson, minutes) = estimate_with_parts(&self.minutes, self.correction.as_ref());
        DeskEstimates { lesson, minutes }
    }
}

/// A desk's estimates, each made once: its row and the class verdict read `lesson`, the
/// class's minutes read `minutes`.
struct DeskEstimates {
    lesson: Option<Estimate>,
    /// Per minute of the lesson; `None` where the desk saw no face (or was not there).
    minutes: Vec<Option<Estimate>>,
}

/// Reads the lesson's timelines (one lesson in memory at a time) and sums its sessions.
/// A session that cannot be read now (changed since the scan) is returned as rejected.
pub fn read_lesson(group: &LessonGroup) -> (LessonReport, Vec<super::scan::Rejected>) {
    let mut desks: BTreeMap<String, DeskSum> = BTreeMap::new();
    let mut rejected = Vec::new();
    for session in &group.sessions {
        match add_session(group.start, session, &mut desks) {
            Ok(()) => {}
            Err(reason) => rejected.push((session.path.clone(), reason)),
        }
    }
    let lesson_minutes = minutes_between(group.start, group.end);
    let estimates: Vec<DeskEstimates> = desks.values().map(DeskSum::estimates).collect();
    let rows: Vec<DeskRow> = desks
        .iter()
        .zip(&estimates)
        .map(|((id, sum), estimates)| desk_row(id, sum, estimates.lesson.as_ref()))
        .collect();
    let judged = rows
        .iter()
        .zip(&estimates)
        .filter_map(|(row, estimates)| Some((row.impression, estimates.lesson?)));
    let (class, class_estimate) = class_impression(judged);
    let shares = class_estimate.as_ref().map(Estimated::new);
    let minutes = (0..lesson_minutes)
        .map(|minute| class_minute(minute, &desks, &estimates))
        .collect();
    let report = LessonReport {
        key: group.key(),
        lesson_id: group.lesson_id.clone(),
        start: humantime::format_rfc3339_seconds(group.start).to_string(),
        end: humantime::format_rfc3339_seconds(group.end).to_string(),
        desks: rows,
        class_impression: class,
        class_positive_percent: shares.as_ref().map(|s| s.positive_percent),
        class_neutral_percent: shares.as_ref().map(|s| s.neutral_percent),
        class_negative_percent: shares.as_ref().map(|s| s.negative_percent),
        class_estimated: shares,
        minutes,
    };
    (report, rejected)
}

fn add_session(
    lesson_start: SystemTime,
    session: &SessionEntry,
    desks: &mut BTreeMap<String, DeskSum>,
) -> Result<(), String> {
    let offset = session
        .start
        .duration_since(lesson_start)
        .unwrap_or(Duration::ZERO)
        .as_secs();
    // This session's minutes first, merged only once the whole timeline has read (a session
    // rejected halfway adds nothing).
    let mut minutes: Vec<Option<SecondBlocks>> = Vec::new();
    for_each_second(&session.path, |second| {
        let minute = (offset.saturating_add(second.second) / 60) as usize;
        if minutes.len() <= minute {
            minutes.resize(minute + 1, None);
        }
        let (counts, units) = (second.categories(), second.probabilities);
        add_second(
            minutes[minute].get_or_insert_with(SecondBlocks::default),
            counts,
            units,
        );
    })?;
    let desk = desks.entry(session.desk_id.clone()).or_default();
    if desk.minutes.len() < minutes.len() {
        desk.minutes.resize(minutes.len(), None);
    }
    for (total, minute) in desk.minutes.iter_mut().zip(minutes) {
        if let Some(blocks) = minute {
            *total = Some(total.take().unwrap_or_default().merged(&blocks));
        }
    }
    if desk.correction.is_none() {
        desk.correction.clone_from(&session.correction);
    }
    desk.sessions += 1;
    desk.frames_analysed = desk.frames_analysed.saturating_add(session.frames_analysed);
    desk.frames_with_face = desk
        .frames_with_face
        .saturating_add(session.frames_with_face);
    desk.face_seconds = desk.face_seconds.saturating_add(session.face_seconds);
    desk.counts = add_counts(desk.counts, session.counts);
    desk.floor.get_or_insert(session.floor);
    Ok(())
}

fn add_counts(a: CategoryCounts, b: CategoryCounts) -> CategoryCounts {
    CategoryCounts {
        positive: a.positive.saturating_add(b.positive),
        neutral: a.neutral.saturating_add(b.neutral),
        negative: a.negative.saturating_add(b.negative),
    }
}

fn desk_row(desk_id: &str, sum: &DeskSum, estimate: Option<&Estimate>) -> DeskRow {
    let evidence = Evidence {
        face_seconds: sum.face_seconds,
        face_share: if sum.frames_analysed == 0 {
            0.0
        } else {
            sum.frames_with_face as f64 / sum.frames_analysed as f64
        },
        floor: sum.floor.unwrap_or_default(),
    };
    let estimated = estimate.map(Estimated::new);
    let share = |pick: fn(&Estimated) -> f64| estimated.as_ref().map_or(0.0, pick);
    DeskRow {
        desk_id: desk_id.to_owned(),
        sessions: sum.sessions,
        frames_analysed: sum.frames_analysed,
        frames_with_face: sum.frames_with_face,
        face_seconds: sum.face_seconds,
        counts: sum.counts,
        positive_percent: share(|e| e.positive_percent),
        neutral_percent: share(|e| e.neutral_percent),
        negative_percent: share(|e| e.negative_percent),
        estimated,
        impression: verdict(estimate, evidence),
    }
}

/// The class in one minute: the mean of the estimates of the desks that saw a face in it
/// (`estimates` in the order of `desks`).
fn class_minute(
    minute: u64,
    desks: &BTreeMap<String, DeskSum>,
    estimates: &[DeskEstimates],
) -> ClassMinute {
    let index = minute as usize;
    let present = desks
        .values()
        .filter(|d| d.minutes.get(index).is_some_and(Option::is_some))
        .count();
    let seen: Vec<Estimate> = estimates
        .iter()
        .filter_map(|e| *e.minutes.get(index)?)
        .collect();
    let mean = Estimate::mean(&seen).map(|e| Estimated::new(&e));
    ClassMinute {
        minute,
        desks_present: present,
        desks_with_face: seen.len(),
        positive_percent: mean.as_ref().map(|m| m.positive_percent),
        neutral_percent: mean.as_ref().map(|m| m.neutral_percent),
        negative_percent: mean.as_ref().map(|m| m.negative_percent),
        interval_90: mean.map(|m| m.interval_90),
    }
}

/// Whole minutes from `start` to `end`, counting a started minute.
fn minutes_between(start: SystemTime, end: SystemTime) -> u64 {
    let seconds = end
        .duration_since(start)
        .unwrap_or(Duration::ZERO)
        .as_secs();
    seconds.div_ceil(60).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(desk: &str, lesson: Option<&str>, start: u64, end: u64) -> SessionEntry {
        SessionEntry {
            path: format!("/x/{desk}/{start}").into(),
            desk_id: desk.into(),
            lesson_id: lesson.map(str::to_owned),
            start: SystemTime::UNIX_EPOCH + Duration::from_secs(start),
            end: SystemTime::UNIX_EPOCH + Duration::from_secs(end),
            frames_analysed: 0,
            frames_with_face: 0,
            face_seconds: 0,
            counts: CategoryCounts::default(),
            floor: EvidenceFloor::default(),
            correction: None,
            fingerprint: [start as u8; 32],
        }
    }

    #[test]
    fn overlapping_sessions_chain_into_one_lesson_and_ids_never_merge() {
        let lessons = group(vec![
            entry("a", None, 100, 200),
            entry("b", None, 150, 400),
            entry("c", None, 390, 500), // overlaps b only: same lesson
            entry("d", None, 600, 700), // after the gap: the next lesson
            entry("e", Some("maths"), 120, 300), // same time, other class
        ]);
        let shape: Vec<(Option<&str>, usize)> = lessons
            .iter()
            .map(|l| (l.lesson_id.as_deref(), l.sessions.len()))
            .collect();
        assert_eq!(shape, [(None, 3), (None, 1), (Some("maths"), 1)]);
        assert_eq!(
            lessons[0].end,
            SystemTime::UNIX_EPOCH + Duration::from_secs(500)
        );
        assert!(lessons[2].key().starts_with("maths-1970-01-01T00-02-00Z"));
    }
}
