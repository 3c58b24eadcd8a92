//! `replay` reads videos the kiosk did not make, through the real ffmpeg: the demo clip
//! encoded by ffmpeg as an AVI (MPEG-4 part 2), a plain H.264 High-profile MP4 (samples in
//! `moov`) and a fragmented High-profile MP4 each replay all 48 frames and find the demo's
//! faces; a truncated file fails (with both readers' reasons when neither can open it)
//! instead of a short "complete" lesson. A real street scene nobody here made or tuned to —
//! OpenCV's `vtest.avi` (MS-MPEG-4 v3, 768×576, pedestrians far from the camera), from
//! Debian's `opencv-doc` — replays every frame and ends "insufficient".

use std::path::{Path, PathBuf};
use std::process::Command;

mod support;
use support::{manifest_dir, scratch};

const KIOSK: &str = env!("CARGO_BIN_EXE_ekspresi");
/// ffmpeg's H.264 High profile, samples in `moov` (what most tools write).
const PLAIN_HIGH: &[&str] = &["-c:v", "libx264", "-pix_fmt", "yuv420p"];
/// The same as a fragmented MP4.
const FRAGMENTED_HIGH: &[&str] = &[
    "-c:v",
    "libx264",
    "-pix_fmt",
    "yuv420p",
    "-movflags",
    "frag_keyframe+empty_moov",
];

/// The demo clip's frames encoded by ffmpeg with `codec_args`.
fn encode(dir: &Path, name: &str, codec_args: &[&str]) -> PathBuf {
    let out = dir.join(name);
    let frames = manifest_dir().join("assets/demo/frame_%04d.jpg");
    let status = Command::new("ffmpeg")
        .args(["-v", "error", "-y", "-framerate", "6", "-i"])
        .arg(frames)
        .args(codec_args)
        .arg(&out)
        .status()
        .expect("ffmpeg is installed (scripts/test.sh installs it)");
    assert!(status.success(), "ffmpeg could not write {name}");
    out
}

fn replay(video: &Path, out: &Path) -> (bool, String, Option<serde_json::Value>) {
    let output = Command::new(KIOSK)
        .arg("replay")
        .arg(video)
        .arg("--out")
        .arg(out)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    let summary = std::fs::read_dir(out.join("sessions/desk-1"))
        .ok()
        .and_then(|mut dirs| dirs.next())
        .and_then(|dir| std::fs::read_to_string(dir.ok()?.path().join("summary.json")).ok())
        .and_then(|json| serde_json::from_str(&json).ok());
    (output.status.success(), text, summary)
}

#[test]
fn videos_from_other_encoders_replay_every_frame() {
    let dir = scratch("replay-formats");
    let clips = [
        encode(&dir, "mpeg4.avi", &["-c:v", "mpeg4", "-q:v", "3"]),
        encode(&dir, "plain-high.mp4", PLAIN_HIGH),
        encode(&dir, "fragmented-high.mp4", FRAGMENTED_HIGH),
    ];
    for clip in &clips {
        let name = clip.file_name().unwrap().to_string_lossy().into_owned();
        let (ok, text, summary) = replay(clip, &dir.join(format!("out-{name}")));
        assert!(ok, "{name}: {text}");
        let summary = summary.unwrap_or_else(|| panic!("{name}: no summary.json"));
        assert_eq!(summary["frames_analysed"], 48, "{name}: every frame");
        // The JPEG demo has the student's face counted in 32 frames; another codec's
        // decoding may shift a detection at the edge of the rule by a frame or two.
        let faces = summary["frames_with_face"].as_u64().unwrap();
        assert!(
            faces.abs_diff(32) <= 3,
            "{name}: {faces} frames with a face"
        );
        assert_eq!(summary["impression"], "good", "{name}");
    }
}

/// OpenCV's sample street clip, as Debian's `opencv-doc` installs it (scripts/test.sh does).
const STREET_CLIP: &str = "/usr/share/doc/opencv-doc/examples/data/vtest.avi";

/// Frames ffprobe decodes in `video`.
fn ffprobe_frames(video: &Path) -> u64 {
    let output = Command::new("ffprobe")
        .args(["-v", "error", "-count_frames", "-select_streams", "v:0"])
        .args(["-show_entries", "stream=nb_read_frames", "-of", "csv=p=0"])
        .arg(video)
        .output()
        .expect("ffprobe is installed (scripts/test.sh installs ffmpeg)");
    String::from_utf8_lossy(&output.stdout)
        .trim()
        .parse()
        .unwrap_or_else(|_| panic!("ffprobe gave no frame count for {}", video.display()))
}

#[test]
fn a_real_street_clip_without_a_close_face_is_insufficient() {
    let clip = Path::new(STREET_CLIP);
    assert!(
        clip.exists(),
        "TEST DATA MISSING: {STREET_CLIP} (apt-get install opencv-doc; scripts/test.sh does)"
    );
    let dir = scratch("replay-street");
    let (ok, text, summary) = replay(clip, &dir.join("out"));
    assert!(ok, "{text}");
    let summary = summary.expect("summary.json");
    assert_eq!(
        summary["frames_analysed"],
        ffprobe_frames(clip),
        "every frame"
    );
    assert_eq!(summary["impression"], "insufficient", "{summary}");
}

#[test]
fn a_truncated_video_fails_with_both_reasons() {
    let dir = scratch("replay-formats-cut");
    let whole = encode(&dir, "whole.mp4", PLAIN_HIGH);
    let bytes = std::fs::read(&whole).unwrap();
    let cut = dir.join("cut.mp4");
    std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
    let (ok, text, _) = replay(&cut, &dir.join("out"));
    assert!(
        !ok,
        "a truncated file must not replay as a complete lesson: {text}"
    );
    assert!(text.contains("and through ffmpeg"), "{text}");
    // A fragmented file cut mid-fragment: ffmpeg decodes what is there and exits 0, but
    // says "partial file"; the lesson keeps those frames and the replay fails.
    let fragmented = encode(&dir, "fragmented.mp4", FRAGMENTED_HIGH);
    let bytes = std::fs::read(&fragmented).unwrap();
    let cut = dir.join("cut-fragmented.mp4");
    std::fs::write(&cut, &bytes[..bytes.len() * 2 / 3]).unwrap();
    let (ok, text, summary) = replay(&cut, &dir.join("out-fragmented"));
    assert!(!ok, "{text}");
    assert!(text.contains("the source failed mid-lesson"), "{text}");
    let analysed = summary.expect("the frames before the cut are summarised")["frames_analysed"]
        .as_u64()
        .unwrap();
    assert!(
        (1..48).contains(&analysed),
        "{analysed} frames before the cut"
    );
    let junk = dir.join("notes.txt");
    std::fs::write(&junk, b"not a video").unwrap();
    let (ok, text, _) = replay(&junk, &dir.join("out-junk"));
    assert!(
        !ok && text.contains("not a video ffmpeg can read"),
        "{text}"
    );
}

/// OpenCV's Megamind clip (MPEG-4 part 2 in AVI, 23.976 fps), from Debian's `opencv-doc`.
const MEGAMIND: &str = "/usr/share/doc/opencv-doc/examples/data/Megamind.avi";

/// Seconds of `video` by ffprobe: (first frame's time, last frame's time + its duration).
fn ffprobe_span(video: &Path) -> f64 {
    let output = Command::new("ffprobe")
        .args(["-v", "error", "-select_streams", "v:0", "-show_entries"])
        .args([
            "frame=best_effort_timestamp_time,duration_time",
            "-of",
            "compact",
        ])
        .arg(video)
        .output()
        .unwrap();
    let field = |line: &str, name: &str| -> Option<f64> {
        line.split('|')
            .find_map(|f| f.strip_prefix(name)?.strip_prefix('='))
            .and_then(|v| v.parse().ok())
    };
    let text = String::from_utf8_lossy(&output.stdout).into_owned();
    let frames: Vec<&str> = text.lines().filter(|l| l.starts_with("frame|")).collect();
    let stamps: Vec<f64> = frames
        .iter()
        .filter_map(|l| field(l, "best_effort_timestamp_time"))
        .collect();
    let (first, last) = (stamps[0], stamps[stamps.len() - 1]);
    // A last frame without a time (Megamind's) comes one frame after the last timed one.
    let untimed_after = (frames.len()
        - 1
        - frames
            .iter()
            .rposition(|l| field(l, "best_effort_timestamp_time").is_some())
            .unwrap()) as f64;
    let period = frames
        .iter()
        .rev()
        .find_map(|l| field(l, "duration_time"))
        .unwrap_or((last - first) / (stamps.len() - 1) as f64);
    last - first + (1.0 + untimed_after) * period
}

/// Issue 28: replay through ffmpeg analyses each decoded frame once (its rawvideo output's
/// constant-rate sync once duplicated frames: 271 of Megamind's 270, 90 of a 26-frame
/// variable-rate clip), and a replayed clip's summary spans the clip's own duration.
#[test]
fn every_decoded_frame_is_analysed_once_at_its_own_time() {
    let dir = scratch("replay-frames");
    // Variable frame rate: the demo's frames shown for 0.1 to 0.9 s each, 26 of them.
    let list = dir.join("vfr.txt");
    let mut concat = String::from("ffconcat version 1.0\n");
    for i in 0..26 {
        let frame = manifest_dir().join(format!("assets/demo/frame_{:04}.jpg", i));
        concat.push_str(&format!(
            "file '{}'\nduration {}\n",
            frame.display(),
            0.1 + 0.4 * ((i % 3) as f64)
        ));
    }
    std::fs::write(&list, concat).unwrap();
    let vfr = dir.join("vfr.mp4");
    let status = Command::new("ffmpeg")
        .args(["-v", "error", "-y", "-f", "concat", "-safe", "0", "-i"])
        .arg(&list)
        .args(["-fps_mode", "vfr", "-c:v", "libx264", "-pix_fmt", "yuv420p"])
        .arg(&vfr)
        .status()
        .unwrap();
    assert!(status.success(), "ffmpeg wrote the VFR clip");
    let y4m = encode(&dir, "clip.y4m", &["-pix_fmt", "yuv420p"]);
    let megamind = Path::new(MEGAMIND);
    assert!(
        megamind.exists(),
        "TEST DATA MISSING: {MEGAMIND} (apt-get install opencv-doc; scripts/test.sh does)"
    );
    for clip in [megamind, vfr.as_path(), y4m.as_path()] {
        let name = clip.file_name().unwrap().to_string_lossy().into_owned();
        let (ok, text, summary) = replay(clip, &dir.join(format!("out-{name}")));
        assert!(ok, "{name}: {text}");
        let summary = summary.unwrap_or_else(|| panic!("{name}: no summary.json"));
        assert_eq!(
            summary["frames_analysed"],
            ffprobe_frames(clip),
            "{name}: every decoded frame, once"
        );
        let start = humantime::parse_rfc3339(summary["lesson_start"].as_str().unwrap()).unwrap();
        let end = humantime::parse_rfc3339(summary["lesson_end"].as_str().unwrap()).unwrap();
        let span = end.duration_since(start).unwrap().as_secs_f64();
        let clip_span = ffprobe_span(clip);
        // Summary times are whole seconds.
        assert!(
            (span - clip_span).abs() <= 1.0,
            "{name}: the summary spans {span} s, the clip {clip_span} s"
        );
        assert_eq!(summary["times"], "recording_start_unknown", "{name}");
        assert!(text.contains("Lesson start: unknown"), "{name}: {text}");
    }
}

/// A clip that says when it was made is dated by it, not by when it was replayed.
#[test]
fn a_clip_with_a_creation_time_is_dated_by_it() {
    let dir = scratch("replay-dated");
    let dated = encode(
        &dir,
        "dated.mp4",
        &[
            PLAIN_HIGH,
            &["-metadata", "creation_time=2026-11-02T09:00:00Z"],
        ]
        .concat(),
    );
    let (ok, text, summary) = replay(&dated, &dir.join("out"));
    assert!(ok, "{text}");
    let summary = summary.unwrap();
    assert_eq!(summary["lesson_start"], "2026-11-02T09:00:00Z", "{summary}");
    assert_eq!(
        summary["lesson_end"], "2026-11-02T09:00:08Z",
        "48 frames at 6 fps"
    );
    assert_eq!(summary["times"], "recording");
}

/// Pictures over the recorder's 3840×2160 are scaled to fit (the video is whole); a 2×2
/// clip is refused up front, not analysed without a video.
#[test]
fn oversized_clips_are_scaled_and_tiny_ones_refused_up_front() {
    let dir = scratch("replay-sizes");
    let big = encode(
        &dir,
        "big.mp4",
        &[PLAIN_HIGH, &["-vf", "scale=4096:2304", "-frames:v", "6"]].concat(),
    );
    let (ok, text, summary) = replay(&big, &dir.join("out-big"));
    assert!(ok, "{text}");
    let summary = summary.unwrap();
    assert_eq!(summary["frames_analysed"], 6);
    assert_eq!(summary["video_note"], serde_json::Value::Null, "{summary}");
    let tiny = encode(
        &dir,
        "tiny.mp4",
        &[PLAIN_HIGH, &["-vf", "scale=2:2", "-frames:v", "3"]].concat(),
    );
    let (ok, text, _) = replay(&tiny, &dir.join("out-tiny"));
    assert!(!ok, "{text}");
    assert!(text.contains("too small to find a face in"), "{text}");
}

/// A file's name is only its name (issue 29's replay class): `-i`, `-f`, `pipe:0` and
/// `seq/%d.png` are those files, analysed as themselves — never ffmpeg options, stdin or an
/// image-sequence pattern that would analyse other files — and a named pipe is refused
/// rather than hanging the replay.
#[test]
fn file_names_are_files_never_options_urls_or_patterns() {
    let dir = scratch("replay-names");
    let clip = encode(&dir, "clip.avi", &["-c:v", "mpeg4", "-q:v", "3"]);
    let seq = dir.join("seq");
    std::fs::create_dir_all(&seq).unwrap();
    // Decoys the pattern would pick up instead: other pictures named 1.png, 2.png, 3.png.
    for i in 1..=3 {
        std::fs::copy(
            manifest_dir().join("assets/demo/frame_0000.jpg"),
            seq.join(format!("{i}.png")),
        )
        .unwrap();
    }
    for name in ["-i", "-f", "pipe:0", "seq/%d.png"] {
        std::fs::copy(&clip, dir.join(name)).unwrap();
        // As a user types it: a relative name, after `--`, from the clip's folder.
        let out = dir.join(format!("out-{}", name.replace(['/', '%', ':'], "_")));
        let output = Command::new(KIOSK)
            .current_dir(&dir)
            .arg("replay")
            .arg("--out")
            .arg(&out)
            .arg("--")
            .arg(name)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(output.status.success(), "{name}: {stderr}");
        let session = std::fs::read_dir(out.join("sessions/desk-1"))
            .unwrap()
            .next()
            .unwrap()
            .unwrap();
        let summary: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(session.path().join("summary.json")).unwrap(),
        )
        .unwrap();
        assert_eq!(
            summary["frames_analysed"], 48,
            "{name}: the named file itself"
        );
    }
    let fifo = dir.join("pipe.mp4");
    let made = Command::new("mkfifo").arg(&fifo).status().unwrap();
    assert!(made.success());
    let (ok, text, _) = replay(&fifo, &dir.join("out-fifo"));
    assert!(!ok, "{text}");
    assert!(text.contains("not a regular file"), "{text}");
}
