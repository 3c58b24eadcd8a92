//! Issue 29: the teacher's machine against hostile desks. Two honest desks record the demo
//! lesson with the real `ekspresi demo`; 100 hostile sessions made from one of them (every
//! class of the audit, `support/hostile.rs`) sit beside them. `ekspresi report` must list
//! every hostile session as rejected with its reason, write nothing outside `--out`, print
//! no raw control character, and report the honest desks exactly as it does alone.
//! (Its time and memory beside honest sessions: the `report_scale` bench.)

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

mod support;
use support::hostile::Maker;
use support::scratch;

const KIOSK: &str = env!("CARGO_BIN_EXE_ekspresi");

/// Two desks' demo lessons, recorded at the same time: `root/<desk>/<session>/`.
fn honest_desks(root: &Path) -> Vec<PathBuf> {
    let recordings: Vec<_> = ["desk-01", "desk-02"]
        .iter()
        .map(|desk| {
            let data_dir = root.join(format!("card-{desk}"));
            let config = root.join(format!("{desk}.json"));
            let json =
                serde_json::json!({"desk_id": desk, "lesson_id": "physics", "data_dir": data_dir});
            std::fs::write(&config, json.to_string()).unwrap();
            let child = Command::new(KIOSK)
                .args(["demo", "--config"])
                .arg(&config)
                .arg("--out")
                .arg(&data_dir)
                .stdout(Stdio::null())
                .spawn()
                .unwrap();
            (desk, data_dir, child)
        })
        .collect();
    recordings
        .into_iter()
        .map(|(desk, data_dir, mut child)| {
            assert!(child.wait().unwrap().success(), "demo lesson failed");
            let desk_dir = data_dir.join("sessions").join(desk);
            let session = std::fs::read_dir(&desk_dir)
                .unwrap()
                .next()
                .unwrap()
                .unwrap();
            let shared = root.join("share").join(desk).join(session.file_name());
            std::fs::create_dir_all(shared.parent().unwrap()).unwrap();
            std::fs::rename(session.path(), &shared).unwrap();
            shared
        })
        .collect()
}

fn report(out: &Path, roots: &[&Path]) -> Output {
    let output = Command::new(KIOSK)
        .arg("report")
        .arg("--out")
        .arg(out)
        .args(roots)
        .env("RUST_BACKTRACE", "1")
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "report failed: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

/// Every path under `dir` (links not followed), sorted.
fn tree(dir: &Path) -> Vec<PathBuf> {
    let mut paths: Vec<PathBuf> = walkdir::WalkDir::new(dir)
        .into_iter()
        .map(|e| e.unwrap().into_path())
        .collect();
    paths.sort();
    paths
}

/// What the report says of the lessons: class.csv and class.json's lessons.
fn lessons_of(out: &Path) -> (String, serde_json::Value) {
    let csv = std::fs::read_to_string(out.join("class.csv")).unwrap();
    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("class.json")).unwrap()).unwrap();
    (csv, json["lessons"].clone())
}

#[test]
fn a_hundred_hostile_sessions_are_rejected_and_the_honest_desks_reported_as_alone() {
    let work = scratch("hostile-desk");
    let honest = honest_desks(&work);
    let share = work.join("share");

    let alone = work.join("report-honest");
    report(&alone, &[&share]);
    let (honest_csv, honest_lessons) = lessons_of(&alone);
    assert!(honest_csv.contains("desk-01") && honest_csv.contains("desk-02"));

    let maker = Maker::new(&honest[0], &share);
    assert!(100 >= Maker::kinds());
    let hostile = maker.make(100);
    let before = tree(&work);
    let out = work.join("report");
    let output = report(&out, &[&share]);
    let said = String::from_utf8_lossy(&output.stdout);

    assert!(
        said.contains("1 lessons from 2 sessions of 2 desks; 100 sessions rejected"),
        "{said}"
    );
    assert!(
        !said.chars().any(|c| c.is_control() && c != '\n'),
        "a raw control character reached the terminal"
    );
    assert!(!String::from_utf8_lossy(&output.stderr).contains("panicked"));
    // Every hostile session is listed, with its reason.
    let rejected: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("class.json")).unwrap()).unwrap();
    let rejected = rejected["rejected"].as_array().unwrap();
    assert_eq!(rejected.len(), hostile.len());
    for session in &hostile {
        let path = session.path.to_string_lossy();
        let listed = rejected
            .iter()
            .find(|r| r["path"].as_str() == Some(&path))
            .unwrap_or_else(|| panic!("{} ({}) is not listed", session.what, path.escape_debug()));
        let reason = listed["reason"].as_str().unwrap();
        assert!(
            reason.contains(session.reason),
            "{}: {reason:?} does not say {:?}",
            session.what,
            session.reason
        );
        // A link's target is never opened, so the rejection says nothing of it.
        assert!(!reason.contains("teacher's own file"));
    }
    // Nothing written outside --out; no lesson id became a path anywhere.
    let after: Vec<PathBuf> = tree(&work)
        .into_iter()
        .filter(|p| !p.starts_with(&out))
        .collect();
    let before: Vec<PathBuf> = before
        .into_iter()
        .filter(|p| !p.starts_with(&out))
        .collect();
    assert_eq!(after, before, "the report wrote outside --out");
    assert!(!Path::new("/tmp/ekspresi-written-by-a-desk").exists());
    assert!(tree(&out)
        .iter()
        .all(|p| !p.to_string_lossy().contains("escaped-by-a-desk")));
    // The honest desks exactly as alone.
    assert_eq!(lessons_of(&out), (honest_csv, honest_lessons));
}

#[test]
fn the_same_session_through_two_roots_counts_once() {
    let work = scratch("hostile-desk-two-roots");
    let honest = honest_desks(&work);
    let share = work.join("share");
    // The teacher's stick holds a copy of one desk's session, the share the original.
    let stick = work.join("stick");
    let copy = stick.join("desk-01").join(honest[0].file_name().unwrap());
    std::fs::create_dir_all(copy.parent().unwrap()).unwrap();
    let status = Command::new("cp")
        .arg("-a")
        .arg(&honest[0])
        .arg(&copy)
        .status()
        .unwrap();
    assert!(status.success());

    let alone = work.join("report-share");
    report(&alone, &[&share]);
    let out = work.join("report-both");
    let said = String::from_utf8_lossy(&report(&out, &[&share, &stick]).stdout).into_owned();
    assert!(
        said.contains("1 lessons from 2 sessions of 2 desks; 1 sessions rejected"),
        "{said}"
    );
    assert!(said.contains("(counted once)"), "{said}");
    assert_eq!(lessons_of(&out), lessons_of(&alone));
}
