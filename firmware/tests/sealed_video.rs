//! Video encrypted at rest (`encrypt_to`), checked with the standard tools: keys from the
//! real `age-keygen`, segments decrypted by the real `age` CLI, the result read by ffprobe.
//! A lesson leaves no plaintext video on the card at any moment, and one killed mid-lesson
//! (SIGKILL, as a power cut) and restarted still decrypts to playable H.264.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use firmware::record::{reserve, session};
use firmware::seal;

mod support;
use support::{age_keygen, kiosk_command, manifest_dir, scratch};

/// Decrypts every segment of `session_dir` with the `age` CLI, concatenated in name order.
fn decrypt_with_age_cli(session_dir: &Path, identity: &Path) -> Vec<u8> {
    let segments = seal::segments(session_dir).unwrap();
    assert!(
        !segments.is_empty(),
        "no segments in {}",
        session_dir.display()
    );
    let mut video = Vec::new();
    for segment in &segments {
        let output = Command::new("age")
            .arg("--decrypt")
            .arg("--identity")
            .arg(identity)
            .arg(segment)
            .output()
            .expect("age is installed");
        assert!(
            output.status.success(),
            "age --decrypt {}: {}",
            segment.display(),
            String::from_utf8_lossy(&output.stderr)
        );
        video.extend_from_slice(&output.stdout);
    }
    video
}

/// (codec, frames) of an MP4 by ffprobe; ffmpeg must decode it without a single error.
fn probe(video: &Path) -> (String, u64) {
    support::assert_decodes_cleanly(video, "sealed lesson");
    support::ffprobe_frames(video)
}

/// The demo clip three times over (24 s at 6 fps), so a lesson lasts long enough to watch.
fn long_clip(dir: &Path) -> PathBuf {
    let clip = dir.join("clip");
    std::fs::create_dir_all(&clip).unwrap();
    let mut stills: Vec<PathBuf> = std::fs::read_dir(manifest_dir().join("assets/demo"))
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "png" || e == "jpg"))
        .collect();
    stills.sort();
    let mut index = 0;
    for _ in 0..3 {
        for still in &stills {
            let ext = still.extension().unwrap().to_string_lossy().into_owned();
            std::fs::copy(still, clip.join(format!("f{index:04}.{ext}"))).unwrap();
            index += 1;
        }
    }
    std::fs::write(clip.join("clip.json"), "{\"fps\": 6}").unwrap();
    clip
}

/// Every file the data directory holds, recursively.
fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut pending = vec![dir.to_owned()];
    while let Some(dir) = pending.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for path in entries.filter_map(|e| e.ok().map(|e| e.path())) {
            if path.is_dir() {
                pending.push(path);
            } else {
                files.push(path);
            }
        }
    }
    files
}

/// A file that could hold video: anything but the summaries, the per-second log, the
/// manifest, the marker and the space reserve (which must be all zeros).
/// Each must be an age file (its header line) and never an MP4 box (`ftyp`, `moof`).
fn assert_no_plaintext_video(data: &Path) {
    let aggregates = [
        session::SUMMARY_TXT,
        session::SUMMARY_JSON,
        session::TIMELINE_CSV,
        session::TIMELINE_PNG,
        session::SECONDS_CSV,
        session::MANIFEST,
        session::COMPLETE,
    ];
    for file in files_under(data) {
        let name = file.file_name().unwrap().to_string_lossy().into_owned();
        if aggregates.iter().any(|a| name.starts_with(a)) {
            continue;
        }
        let Ok(bytes) = std::fs::read(&file) else {
            continue; // renamed or removed between listing and reading
        };
        if name == reserve::RESERVE_FILE {
            // The space reserve holds nothing but zeros.
            assert!(
                bytes.iter().all(|&b| b == 0),
                "{} holds data",
                file.display()
            );
            continue;
        }
        // A segment being written may hold only part of the header line so far.
        const AGE_HEADER: &[u8] = b"age-encryption.org/v1\n";
        let head = &bytes[..bytes.len().min(AGE_HEADER.len())];
        assert!(
            AGE_HEADER.starts_with(head),
            "{} is not an age file (starts {:?})",
            file.display(),
            String::from_utf8_lossy(head)
        );
    }
}

/// A scratch folder with a fresh school key, a config encrypting to it (1 s fragments),
/// the long clip and a data directory for the kiosk.
struct SealedLesson {
    out: PathBuf,
    identity: PathBuf,
    config: PathBuf,
    clip: PathBuf,
    data: PathBuf,
}

impl SealedLesson {
    fn new(name: &str) -> Self {
        let out = scratch(name);
        let (identity, recipient) = age_keygen(&out);
        let config = out.join("config.json");
        std::fs::write(
            &config,
            format!(r#"{{"encrypt_to": ["{recipient}"], "keyframe_interval_s": 1}}"#),
        )
        .unwrap();
        let clip = long_clip(&out);
        let data = out.join("data");
        Self {
            out,
            identity,
            config,
            clip,
            data,
        }
    }

    /// `ekspresi replay` of the clip into the data directory, stdout discarded.
    fn replay(&self, stderr: Stdio) -> std::process::Child {
        kiosk_command()
            .arg("replay")
            .arg(&self.clip)
            .arg("--out")
            .arg(&self.data)
            .arg("--config")
            .arg(&self.config)
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .unwrap()
    }
}

#[test]
fn an_encrypted_lesson_decrypts_with_the_age_cli_and_never_leaves_plaintext_video() {
    let lesson = SealedLesson::new("sealed_lesson");
    let (out, identity, data) = (&lesson.out, &lesson.identity, &lesson.data);
    let mut child = lesson.replay(Stdio::piped());
    // Watch the card while the lesson is written, not only afterwards.
    let mut looks = 0;
    while child.try_wait().unwrap().is_none() {
        assert_no_plaintext_video(data);
        looks += 1;
        std::thread::sleep(Duration::from_millis(20));
    }
    let result = child.wait_with_output().unwrap();
    assert!(
        result.status.success(),
        "{}",
        String::from_utf8_lossy(&result.stderr)
    );
    assert_no_plaintext_video(data);
    assert!(looks >= 10, "the lesson was watched only {looks} times");

    let sessions: Vec<PathBuf> = std::fs::read_dir(data.join("sessions/desk-1"))
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    assert_eq!(sessions.len(), 1);
    let session_dir = &sessions[0];
    assert!(!session_dir.join(session::VIDEO).exists());
    // Lesson data is never readable by others (0640 files, 0750 folders, set by the kiosk).
    {
        use std::os::unix::fs::PermissionsExt;
        for path in files_under(data).into_iter().chain([session_dir.clone()]) {
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o007, 0, "{} is {:o}", path.display(), mode & 0o777);
        }
    }
    // A segment per keyframe interval: 24 s of video in 1 s fragments.
    let segments = seal::segments(session_dir).unwrap();
    assert!(
        (20..=26).contains(&segments.len()),
        "{} segments",
        segments.len()
    );

    let by_cli = out.join("by-age-cli.mp4");
    std::fs::write(&by_cli, decrypt_with_age_cli(session_dir, identity)).unwrap();
    assert_eq!(probe(&by_cli), ("h264".to_owned(), 144));
    // The first segment alone is a playable file too (header + first fragment).
    let first = Command::new("age")
        .args(["--decrypt", "--identity"])
        .arg(identity)
        .arg(&segments[0])
        .output()
        .unwrap();
    let first_path = out.join("first-segment.mp4");
    std::fs::write(&first_path, first.stdout).unwrap();
    let (_, first_frames) = probe(&first_path);
    assert!(
        (5..=7).contains(&first_frames),
        "first segment: {first_frames} frames"
    );

    // `kiosk decrypt` gives the same bytes; it never overwrites.
    let by_kiosk = out.join("by-kiosk.mp4");
    let decrypt = |target: &Path| {
        kiosk_command()
            .arg("decrypt")
            .arg(session_dir)
            .arg("--identity")
            .arg(identity)
            .arg("--out")
            .arg(target)
            .output()
            .unwrap()
    };
    assert!(decrypt(&by_kiosk).status.success());
    assert_eq!(
        std::fs::read(&by_kiosk).unwrap(),
        std::fs::read(&by_cli).unwrap()
    );
    let again = decrypt(&by_kiosk);
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("exists"));
    // What a run killed half-way left behind (issue 29: it once blocked every later run).
    std::fs::write(out.join("after-a-kill.mp4.partial"), b"half a video").unwrap();
    let after_kill = out.join("after-a-kill.mp4");
    assert!(decrypt(&after_kill).status.success());
    assert_eq!(
        std::fs::read(&after_kill).unwrap(),
        std::fs::read(&by_cli).unwrap()
    );

    // The manifest covers the segments, and `sha256sum -c` agrees.
    let check = Command::new("sha256sum")
        .args(["--check", "--quiet", session::MANIFEST])
        .current_dir(session_dir)
        .output()
        .unwrap();
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stdout)
    );
    let manifest = std::fs::read_to_string(session_dir.join(session::MANIFEST)).unwrap();
    assert_eq!(manifest.matches(".mp4.age").count(), segments.len());
}

#[test]
fn an_encrypted_lesson_killed_mid_way_decrypts_after_the_restart() {
    let lesson = SealedLesson::new("sealed_power_cut");
    let (out, identity, data) = (&lesson.out, &lesson.identity, &lesson.data);
    let replay = || lesson.replay(Stdio::null());
    let session_dirs = || -> Vec<PathBuf> {
        std::fs::read_dir(data.join("sessions/desk-1"))
            .map(|d| d.filter_map(|e| e.ok().map(|e| e.path())).collect())
            .unwrap_or_default()
    };
    let mut child = replay();
    // Kill once five segments are on the card: mid-lesson, with more to come.
    let started = Instant::now();
    let killed_in = loop {
        let segments = session_dirs()
            .first()
            .map_or(0, |dir| seal::segments(dir).map_or(0, |s| s.len()));
        if segments >= 5 {
            break session_dirs()[0].clone();
        }
        assert!(
            child.try_wait().unwrap().is_none(),
            "the lesson ended before the kill"
        );
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "no segments appeared"
        );
        std::thread::sleep(Duration::from_millis(5));
    };
    child.kill().unwrap(); // SIGKILL: no destructor, no last fragment
    child.wait().unwrap();
    assert!(
        !killed_in.join(session::COMPLETE).exists(),
        "killed too late"
    );
    assert_no_plaintext_video(data);

    // The restart recovers the cut session (and then records a lesson of its own).
    let restarted = replay().wait().unwrap();
    assert!(restarted.success());
    assert_no_plaintext_video(data);
    let note = std::fs::read_to_string(killed_in.join(session::COMPLETE)).unwrap();
    assert!(note.contains("interrupted"), "{note}");
    let video = out.join("after-the-cut.mp4");
    std::fs::write(&video, decrypt_with_age_cli(&killed_in, identity)).unwrap();
    let (codec, frames) = probe(&video);
    assert_eq!(codec, "h264");
    // At least the five whole 1 s fragments seen before the kill (6 frames each).
    assert!((30..144).contains(&frames), "{frames} frames after the cut");
    assert_eq!(session_dirs().len(), 2);
}
