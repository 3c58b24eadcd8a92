//! `kiosk report` at school scale: 1,000 and 10,000 generated sessions (30 desks per lesson,
//! 45-minute lessons; summaries and timelines only, each with its MANIFEST and COMPLETE),
//! reported in one run, with wall time and peak resident memory of the report alone (the
//! process's high-water mark is reset after generating). Goal: 10,000 sessions in ≤ 10 s
//! and ≤ 100 MB on the 2-core development machine.
//!
//! `cargo bench --workspace --bench report_scale` (generated sets are kept in
//! target/bench-scratch/report-N and reused).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use ekspresi_common::{Category, Expression};
use firmware::aggregate::{EvidenceFloor, Tally};
use firmware::record::session::{manifest, COMPLETE, MANIFEST, SUMMARY_JSON, TIMELINE_CSV};
use firmware::record::summary::{LessonTimes, Summary, SummaryInput, Timeline};

const DESKS_PER_LESSON: usize = 30;
const LESSON_SECONDS: u64 = 45 * 60;
const FPS: u64 = 10;

fn main() {
    let sizes = [1_000usize, 10_000];
    let mut rows = Vec::new();
    for &sessions in &sizes {
        let root = generated(sessions);
        // The scan alone (verify every MANIFEST, read every summary), to show where time goes.
        let scan_start = Instant::now();
        let (found, _) = firmware::report::scan::scan(std::slice::from_ref(&root), |_| {});
        let scan_time = scan_start.elapsed();
        drop(found);
        reset_peak_memory();
        let out = root.with_extension("report");
        let start = Instant::now();
        let written = firmware::report::write_report(std::slice::from_ref(&root), &out, |_| {})
            .expect("report");
        let elapsed = start.elapsed();
        assert_eq!(
            written.sessions, sessions,
            "every generated session is read"
        );
        assert!(
            written.rejected.is_empty(),
            "{:?}",
            written.rejected.first()
        );
        rows.push((
            sessions,
            written.lessons,
            scan_time,
            elapsed,
            peak_memory_mib(),
        ));
    }
    println!(
        "\nkiosk report over generated sessions (45-min lessons, {DESKS_PER_LESSON} desks each)"
    );
    println!("| sessions | lessons | scan alone (s) | whole report (s) | peak RSS (MiB) | goal |");
    println!("|---:|---:|---:|---:|---:|---|");
    for (sessions, lessons, scan, elapsed, peak) in rows {
        println!(
            "| {sessions} | {lessons} | {:.2} | {:.2} | {peak:.1} | {} |",
            scan.as_secs_f64(),
            elapsed.as_secs_f64(),
            if sessions == 10_000 {
                "≤ 10 s, ≤ 100 MB"
            } else {
                ""
            }
        );
    }
}

/// `target/bench-scratch/report-N`, generated unless a finished set is there.
fn generated(sessions: usize) -> PathBuf {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../target/bench-scratch")
        .join(format!("report-{sessions}"));
    let done = root.with_extension("done");
    if done.exists() {
        return root;
    }
    let _ = std::fs::remove_dir_all(&root);
    let started = Instant::now();
    let lesson_start = SystemTime::UNIX_EPOCH + Duration::from_secs(1_790_000_000);
    for index in 0..sessions {
        let lesson = (index / DESKS_PER_LESSON) as u64;
        let desk = format!("desk-{:02}", index % DESKS_PER_LESSON);
        // Lessons an hour apart; desks start within the first minute.
        let start = lesson_start
            + Duration::from_secs(lesson * 3600 + (index % DESKS_PER_LESSON) as u64 * 2);
        write_session(&root, &desk, start, index as u64);
    }
    std::fs::write(&done, b"").unwrap();
    eprintln!(
        "generated {sessions} sessions in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    root
}

fn write_session(root: &Path, desk: &str, start: SystemTime, seed: u64) {
    let start_text = humantime::format_rfc3339_seconds(start).to_string();
    let dir = root.join(desk).join(start_text.replace(':', "-"));
    std::fs::create_dir_all(&dir).unwrap();
    let mut tally = Tally::default();
    let mut timeline = Timeline::default();
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    for second in 0..LESSON_SECONDS {
        for _ in 0..FPS {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            // A face in 80 % of frames; expressions spread over all seven.
            if state % 10 < 8 {
                let expression = Expression::ALL[(state >> 8) as usize % 7];
                tally.record(expression, second);
                timeline.record(second, Some(expression.category()));
            } else {
                tally.record_no_face();
                timeline.record(second, None::<Category>);
            }
        }
    }
    let end =
        humantime::format_rfc3339_seconds(start + Duration::from_secs(LESSON_SECONDS)).to_string();
    let summary = Summary::build(&SummaryInput {
        desk_id: desk,
        lesson_id: None,
        lesson_start: &start_text,
        lesson_end: Some(&end),
        tally: &tally,
        floor: EvidenceFloor::default(),
        frames_dropped: 0,
        frames_skipped: 0,
        model: "lenet5-int8.onnx",
        model_accuracy: Some(0.6291),
        calibration: None,
        video_note: None,
        times: LessonTimes::Camera,
    });
    std::fs::write(
        dir.join(SUMMARY_JSON),
        serde_json::to_vec_pretty(&summary).unwrap(),
    )
    .unwrap();
    std::fs::write(dir.join(TIMELINE_CSV), timeline.to_csv()).unwrap();
    std::fs::write(dir.join(MANIFEST), manifest(&dir).unwrap()).unwrap();
    std::fs::write(dir.join(COMPLETE), b"ok\n").unwrap();
}

/// Resets the process's peak resident set (VmHWM) to its current size.
fn reset_peak_memory() {
    std::fs::write("/proc/self/clear_refs", b"5").expect("Linux /proc/self/clear_refs");
}

fn peak_memory_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let kib: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM in /proc/self/status");
    kib / 1024.0
}
