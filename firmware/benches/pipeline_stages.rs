//! The kiosk's real-time budget, measured side by side in one run on a 640×480, 30 fps H.264
//! clip of 300 frames with a face in most of them (`support/clip.rs`; recorded once into
//! `target/bench-clip/`). Prints tables; run with `cargo bench -p firmware --bench
//! pipeline_stages`.
//!
//! 1. Detection, three ways through the kiosk's own `FaceAnalysis::find_face`: OpenCV's full
//!    scan (`"scan": "full"`), the student scan (faces of the student's size on a reduced
//!    frame) and the student scan with tracking (the defaults) — time, CPU, allocations and
//!    the machine-independent work (cascade windows and stumps per frame), and in how many
//!    frames each finds the same student face as the full scan.
//! 2. The same frames through real OpenCV `detectMultiScale` (`tests/parity/opencv_clip.py`),
//!    single- and multi-threaded, at the full scan's and the student's minimum size.
//! 3. Every other stage per frame: decode, grey, classify (with tract's multiply-adds per
//!    face), overlay, privacy blur, H.264 encoding at several speed settings (with the size
//!    and the luma PSNR they give), the recorder, encryption.
//! 4. The whole kiosk replaying the clip as a separate process (`ekspresi replay`, the
//!    defaults, every frame analysed and recorded): × real time, CPU ms per frame and peak
//!    RSS, beside the same with the full scan; and the steady per-frame CPU, from a replay
//!    of the clip twice over less the clip's (no start-up or close in it).
//!
//! With `EKSPRESI_BENCH_BASELINE` set to another `ekspresi` binary (an earlier commit's), the
//! replay section runs it too, taking turns with this build, for a side-by-side comparison.
//!
//! Times are the best of a few rounds (the least disturbed by other load on a shared
//! machine); CPU time is the process's over all its threads; allocations are counted by a
//! counting global allocator.

#[path = "support/clip.rs"]
mod clip;
#[path = "support/measure.rs"]
mod measure;
#[path = "support/scene.rs"]
mod scene;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use ekspresi_common::model::ExpressionModel;
use firmware::classify::FaceClassifier;
use firmware::config::{KioskConfig, ScanMode};
use firmware::detect::{FaceTracker, GreyImage, Rect};
use firmware::devices::{Frame, FrameSource};
use firmware::mp4::write::encoder_config;
use firmware::mp4::{FragmentSink, Mp4Source, PlainFile, VideoRecorder};
use firmware::pipeline::FaceAnalysis;
use firmware::record::overlay::{Annotation, Overlay};
use firmware::record::privacy::blur_picture;
use firmware::seal::SealedSegments;
use image::RgbImage;
use measure::{per_frame, run_child, ChildRun, Stage};
use openh264::encoder::{Complexity, Encoder, EncoderConfig};
use openh264::formats::{RgbSliceU8, YUVBuffer, YUVSource};
use openh264::OpenH264API;

#[global_allocator]
static GLOBAL: measure::Counting = measure::Counting;

const ROUNDS: usize = 3;
/// Boxes overlapping at least this much are the same face.
const SAME_FACE_IOU: f64 = 0.5;

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn scratch() -> PathBuf {
    let dir = workspace().join("target/bench-scratch");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("scratch dir");
    dir
}

fn read_all(source: &mut dyn FrameSource) -> Vec<Frame> {
    let mut frames = Vec::new();
    while let Some(frame) = source.next_frame().expect("frame") {
        frames.push(frame);
    }
    frames
}

fn same_face(a: Option<Rect>, b: Option<Rect>) -> bool {
    match (a, b) {
        (None, None) => true,
        (Some(a), Some(b)) => a.iou(&b) >= SAME_FACE_IOU,
        _ => false,
    }
}

fn agreement(faces: &[Option<Rect>], reference: &[Option<Rect>]) -> usize {
    faces
        .iter()
        .zip(reference)
        .filter(|(a, b)| same_face(**a, **b))
        .count()
}

/// One detection set-up measured: its row and the face it chose in every frame.
struct DetectRun {
    label: &'static str,
    stage: Stage,
    windows: f64,
    stumps: f64,
    faces: Vec<Option<Rect>>,
}

fn detect_run(
    label: &'static str,
    config: &KioskConfig,
    model: &Path,
    frames: &[Frame],
) -> DetectRun {
    let mut analysis = FaceAnalysis::new(config, model).expect("analysis");
    let mut faces = Vec::new();
    let mut work = Default::default();
    let stage = per_frame(ROUNDS, frames.len(), || {
        let mut tracker = FaceTracker::default();
        analysis.take_scan_work();
        faces = frames
            .iter()
            .map(|frame| analysis.find_face(frame, &mut tracker).expect("detect"))
            .collect();
        work = analysis.take_scan_work();
    });
    let n = frames.len() as f64;
    DetectRun {
        label,
        stage,
        windows: work.windows as f64 / n,
        stumps: work.stumps as f64 / n,
        faces,
    }
}

fn detection(model: &Path, frames: &[Frame]) -> Vec<DetectRun> {
    let full = KioskConfig {
        scan: ScanMode::Full,
        track_face_frames: 0,
        ..KioskConfig::default()
    };
    let student = KioskConfig {
        track_face_frames: 0,
        ..KioskConfig::default()
    };
    vec![
        detect_run("full scan (OpenCV's, min 30 px)", &full, model, frames),
        detect_run(
            "student scan (min 64 px, frame ÷2)",
            &student,
            model,
            frames,
        ),
        detect_run(
            "student scan + tracking (full scan every 10th)",
            &KioskConfig {
                track_face_frames: 10,
                ..KioskConfig::default()
            },
            model,
            frames,
        ),
    ]
}

fn print_detection(clip: &str, runs: &[DetectRun]) {
    let reference = &runs[0].faces;
    let n = reference.len();
    let defaults = KioskConfig::default();
    println!(
        "\n## Detection on {clip}, {n} frames (the kiosk's defaults: scan {:?}, track_face_frames {})\n",
        defaults.scan, defaults.track_face_frames
    );
    println!("| scan | ms/frame | CPU ms/frame | allocations/frame | windows/frame | stumps/frame | frames with a face | same face as the full scan |");
    println!("|---|---:|---:|---:|---:|---:|---:|---:|");
    for run in runs {
        let found = run.faces.iter().filter(|f| f.is_some()).count();
        let same = agreement(&run.faces, reference);
        println!(
            "| {} | {:.2} | {:.2} | {:.1} | {:.0} | {:.0} | {found} | {same} ({:.1} %) |",
            run.label,
            run.stage.wall_ms,
            run.stage.cpu_ms,
            run.stage.allocations.unwrap_or(f64::NAN),
            run.windows,
            run.stumps,
            100.0 * same as f64 / n as f64
        );
    }
}

/// Real OpenCV on the same grey frames, as `opencv_clip.py` reports it.
struct OpenCvRun {
    threads: u64,
    min_size: u32,
    wall_ms: f64,
    cpu_ms: f64,
    faces: Vec<Option<Rect>>,
}

fn opencv(raw: &Path, min_size: u32, threads: u32) -> Option<OpenCvRun> {
    let params = KioskConfig::default().detect;
    let output =
        Command::new(std::env::var("EKSPRESI_PYTHON").unwrap_or_else(|_| "python3".into()))
            .arg(workspace().join("tests/parity/opencv_clip.py"))
            .arg("--frames")
            .arg(raw)
            .args(["--width", "640", "--height", "480"])
            .arg("--cascade")
            .arg(workspace().join("firmware/assets/haarcascade_frontalface_default.xml"))
            .args(["--scale-factor", &params.scale_factor.to_string()])
            .args(["--min-neighbors", &params.min_neighbors.to_string()])
            .args(["--min-size", &min_size.to_string()])
            .args(["--threads", &threads.to_string()])
            .output()
            .ok()?;
    if !output.status.success() {
        eprintln!(
            "OpenCV rows skipped: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        );
        return None;
    }
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).ok()?;
    let min_side = f64::from(min_size.max(64));
    let faces = report["faces"]
        .as_array()?
        .iter()
        .map(|frame| largest_at_least(frame, min_side))
        .collect();
    Some(OpenCvRun {
        threads: report["threads"].as_u64().unwrap_or(0),
        min_size,
        wall_ms: report["wall_s_per_frame"].as_f64()? * 1e3,
        cpu_ms: report["cpu_s_per_frame"].as_f64()? * 1e3,
        faces,
    })
}

/// OpenCV gives no hit counts: its student face is the largest of at least `min_side`.
fn largest_at_least(frame: &serde_json::Value, min_side: f64) -> Option<Rect> {
    frame
        .as_array()?
        .iter()
        .filter_map(|b| {
            let v: Vec<i32> = b
                .as_array()?
                .iter()
                .map(|x| x.as_i64().unwrap_or(0) as i32)
                .collect();
            (v.len() == 4).then(|| Rect {
                x: v[0],
                y: v[1],
                width: v[2],
                height: v[3],
            })
        })
        .filter(|r| f64::from(r.width) >= min_side)
        .max_by_key(Rect::area)
}

fn print_opencv(frames: &[Frame], ours_full: &[Option<Rect>], dir: &Path) {
    let raw = dir.join("grey-frames.raw");
    let mut bytes = Vec::with_capacity(frames.len() * 640 * 480);
    let mut grey = Vec::new();
    for frame in frames {
        frame.grey_into(&mut grey);
        bytes.extend_from_slice(&grey);
    }
    std::fs::write(&raw, bytes).expect("raw frames");
    println!("\n## The same frames through OpenCV's detectMultiScale (opencv-python, scale 1.1, neighbours 5)\n");
    println!(
        "| min size | OpenCV threads | ms/frame | CPU ms/frame | same face as our full scan |"
    );
    println!("|---:|---:|---:|---:|---:|");
    for (min_size, threads) in [(30, 1), (30, 0), (64, 1), (64, 0)] {
        let Some(run) = opencv(&raw, min_size, threads) else {
            return;
        };
        let same = agreement(&run.faces, ours_full);
        println!(
            "| {} | {} | {:.2} | {:.2} | {same} of {} |",
            run.min_size,
            run.threads,
            run.wall_ms,
            run.cpu_ms,
            frames.len()
        );
    }
}

/// One encoder setting: its OpenH264 config and a name for the table.
fn encoder_settings(fps: f64) -> Vec<(&'static str, EncoderConfig)> {
    let recorder = encoder_config(fps);
    let lean = |config: EncoderConfig| {
        config
            .adaptive_quantization(false)
            .background_detection(false)
            .scene_change_detect(false)
    };
    vec![
        (
            "OpenH264 defaults, medium complexity",
            recorder.complexity(Complexity::Medium),
        ),
        ("high complexity", recorder.complexity(Complexity::High)),
        ("low complexity", recorder.complexity(Complexity::Low)),
        (
            "low, no AQ / background / scene detection",
            lean(recorder.complexity(Complexity::Low)),
        ),
        (
            "low, lean, 1 thread",
            lean(recorder.complexity(Complexity::Low)).num_threads(1),
        ),
        ("the recorder's setting", recorder),
    ]
}

/// Encodes every image with `config`; returns the bytes written and the luma PSNR of the
/// decoded frames against the encoder's own input.
fn encode_all(images: &[RgbImage], config: EncoderConfig) -> (usize, f64) {
    let mut encoder =
        Encoder::with_api_config(OpenH264API::from_source(), config).expect("encoder");
    let mut decoder = openh264::decoder::Decoder::new().expect("decoder");
    let (mut bytes, mut squared_error, mut samples) = (0usize, 0f64, 0f64);
    let mut yuv = YUVBuffer::new(640, 480);
    for image in images {
        yuv.read_rgb8(RgbSliceU8::new(image.as_raw(), (640, 480)));
        let stream = encoder.encode(&yuv).expect("encode").to_vec();
        bytes += stream.len();
        if let Ok(Some(decoded)) = decoder.decode(&stream) {
            let (stride, _, _) = decoded.strides();
            for (row, source) in decoded.y().chunks(stride).zip(yuv.y().chunks(640)) {
                for (&d, &s) in row.iter().zip(source) {
                    squared_error += (f64::from(d) - f64::from(s)).powi(2);
                    samples += 1.0;
                }
            }
        }
    }
    let mse = squared_error / samples.max(1.0);
    (bytes, 10.0 * (255.0f64 * 255.0 / mse.max(1e-9)).log10())
}

fn print_encoders(images: &[RgbImage]) {
    println!(
        "\n## H.264 encoding (OpenH264, constant quality), {} frames\n",
        images.len()
    );
    println!("| setting | ms/frame | CPU ms/frame | kB per second of video | luma PSNR dB |");
    println!("|---|---:|---:|---:|---:|");
    let seconds = images.len() as f64 / f64::from(clip::FPS);
    for (name, config) in encoder_settings(f64::from(clip::FPS)) {
        let mut quality = (0, 0.0);
        let timing = per_frame(ROUNDS, images.len(), || {
            let mut encoder =
                Encoder::with_api_config(OpenH264API::from_source(), config).expect("encoder");
            let mut yuv = YUVBuffer::new(640, 480);
            for image in images {
                yuv.read_rgb8(RgbSliceU8::new(image.as_raw(), (640, 480)));
                encoder.encode(&yuv).expect("encode");
            }
        });
        if quality.0 == 0 {
            quality = encode_all(images, config);
        }
        println!(
            "| {name} | {:.2} | {:.2} | {:.0} | {:.2} |",
            timing.wall_ms,
            timing.cpu_ms,
            quality.0 as f64 / 1e3 / seconds,
            quality.1
        );
    }
}

/// The default model's correction, from the shipped `models.json`.
fn shipped_correction() -> ekspresi_common::estimate::Correction {
    let installed = firmware::models::Installed::find().expect("models.json");
    let default = installed
        .named(&installed.manifest.default)
        .expect("the default model");
    let calibration = default.calibration.as_ref().expect("a calibration");
    ekspresi_common::estimate::Correction::new(calibration).expect("a usable calibration")
}

/// The re-weighted lesson estimate (issue 27) at the end of a 45-minute lesson, 5 faces a
/// second, each second's probabilities the int8 LeNet-5's on the clip's faces in turn, with
/// the default model's shipped probability scaling: the cost of one refresh (its interval
/// included), spread over the frames between two refreshes — 30 when refreshed
/// every second, 270 as the kiosk's `LiveEstimate` does at 45 minutes (every 9 s).
fn reweighting_refresh(
    model: &Path,
    greys: &[Vec<u8>],
    faces: &[Option<Rect>],
    with_face: &[usize],
    n: usize,
) -> Vec<(&'static str, Stage)> {
    let mut classifier = FaceClassifier::load(model, 0.0).expect("model");
    let seen: Vec<[f32; 7]> = with_face
        .iter()
        .map(|&i| {
            let grey = GreyImage::new(640, 480, &greys[i]).expect("grey frame");
            classifier
                .classify(grey, faces[i].expect("face"))
                .expect("classify")
        })
        .collect();
    let mut blocks = ekspresi_common::estimate::SecondBlocks::default();
    for second in 0..45 * 60 {
        let (mut counts, mut summed) = ([0u64; 3], [0.0f64; 7]);
        for i in 0..5 {
            let p = &seen[(second * 5 + i) % seen.len()];
            counts[ekspresi_common::Expression::most_probable(p)
                .category()
                .index()] += 1;
            for (sum, &v) in summed.iter_mut().zip(p) {
                *sum += f64::from(v);
            }
        }
        blocks.add_second_with_probabilities(counts, summed);
    }
    let correction = shipped_correction();
    [
        (
            "lesson estimate by re-weighting (45-min lesson, refreshed every second at 30 fps)",
            30,
        ),
        (
            "lesson estimate by re-weighting (45-min lesson, refreshed every 9 s as live)",
            270,
        ),
    ]
    .into_iter()
    .map(|(label, frames_a_refresh)| {
        let refreshes = n.div_ceil(frames_a_refresh);
        let row = per_frame(ROUNDS, n, || {
            for _ in 0..refreshes {
                let estimate = ekspresi_common::estimate::estimate(&blocks, Some(&correction));
                assert_eq!(
                    estimate.map(|e| e.method),
                    Some(ekspresi_common::estimate::Method::CalibratedEm)
                );
            }
        });
        (label, row)
    })
    .collect()
}

/// A lesson of `seconds` seconds, `per_second` faces each, expressions cycling.
fn long_lesson_tally(seconds: u64, per_second: u64) -> firmware::aggregate::Tally {
    let mut tally = firmware::aggregate::Tally::default();
    for second in 0..seconds {
        for i in 0..per_second {
            let expression = ekspresi_common::Expression::ALL[((second + i) % 7) as usize];
            tally.record(expression, second);
        }
    }
    tally
}

fn print_stages(rows: &[(&str, Stage)]) {
    println!("\n## Per-stage cost per 640×480 frame\n");
    println!("| stage | ms/frame | CPU ms/frame | heap allocations/frame |");
    println!("|---|---:|---:|---:|");
    for (stage, row) in rows {
        let allocations = row
            .allocations
            .map_or_else(|| "–".to_owned(), |a| format!("{a:.1}"));
        // Sub-10 µs stages (the lesson estimate) get four decimals, not a flat 0.00.
        let ms = |v: f64| {
            if v < 0.01 {
                format!("{v:.4}")
            } else {
                format!("{v:.2}")
            }
        };
        println!(
            "| {stage} | {} | {} | {allocations} |",
            ms(row.wall_ms),
            ms(row.cpu_ms)
        );
    }
}

/// `binary replay` on the clip in its own process, with `config` (JSON; `None`: defaults).
fn replay(
    binary: &Path,
    clip: &Path,
    dir: &Path,
    name: &str,
    config: Option<&str>,
) -> (ChildRun, u64) {
    let out = dir.join(format!("replay-{name}"));
    let _ = std::fs::remove_dir_all(&out);
    let mut command = Command::new(binary);
    command.arg("replay").arg(clip).arg("--out").arg(&out);
    if let Some(config) = config {
        let path = dir.join(format!("{name}.json"));
        std::fs::write(&path, config).expect("config");
        command.arg("--config").arg(path);
    }
    command.stdout(std::process::Stdio::null());
    let run = run_child(&mut command);
    assert!(run.success, "ekspresi replay failed");
    (run, frames_analysed(&out))
}

fn frames_analysed(out: &Path) -> u64 {
    let summary = walk(out)
        .into_iter()
        .find(|p| p.file_name().is_some_and(|n| n == "summary.json"))
        .expect("summary.json");
    let summary: serde_json::Value =
        serde_json::from_slice(&std::fs::read(summary).expect("summary")).expect("json");
    summary["frames_analysed"]
        .as_u64()
        .expect("frames_analysed")
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            found.extend(walk(&path));
        } else {
            found.push(path);
        }
    }
    found
}

/// The fastest of `ROUNDS` replays of `clip` with `config` by each binary, the binaries
/// taking turns within a round: per binary, the run and frames analysed.
fn best_replays(
    binaries: &[(String, PathBuf)],
    clip: &Path,
    dir: &Path,
    slug: &str,
    config: Option<&str>,
) -> Vec<(ChildRun, u64)> {
    let mut best: Vec<Option<(ChildRun, u64)>> = vec![None; binaries.len()];
    for round in 0..ROUNDS {
        for (index, (_, binary)) in binaries.iter().enumerate() {
            let run = replay(
                binary,
                clip,
                dir,
                &format!("{slug}-{index}-{round}"),
                config,
            );
            if best[index].as_ref().is_none_or(|b| run.0.wall < b.0.wall) {
                best[index] = Some(run);
            }
        }
    }
    best.into_iter().map(|b| b.expect("ROUNDS > 0")).collect()
}

/// The replays: the clip, and the clip twice in one file; the difference of the two is the
/// per-frame CPU of a running kiosk, without the process's fixed start-up and close.
fn print_replays(clips: (&Path, &Path), dir: &Path, frames: usize) {
    let seconds = frames as f64 / f64::from(clip::FPS);
    println!("\n## The whole kiosk replaying the clip (`ekspresi replay`, own process, recording on; best of {ROUNDS})\n");
    println!("| settings | binary | frames analysed | wall s | × real time | CPU ms/frame | CPU ms/frame, steady (clip ×2 − clip) | peak RSS MiB |");
    println!("|---|---|---:|---:|---:|---:|---:|---:|");
    let full = r#"{"scan": "full", "track_face_frames": 0}"#;
    let binaries = measure::compared_binaries();
    for (name, slug, config) in [
        ("defaults", "defaults", None),
        ("full scan, no tracking", "full", Some(full)),
    ] {
        let once = best_replays(&binaries, clips.0, dir, slug, config);
        let twice = best_replays(&binaries, clips.1, dir, &format!("{slug}-x2"), config);
        for (((binary, _), (once, analysed)), (twice, analysed_twice)) in
            binaries.iter().zip(once).zip(twice)
        {
            let added = analysed_twice.saturating_sub(analysed).max(1) as f64;
            let steady = (twice.cpu.as_secs_f64() - once.cpu.as_secs_f64()) * 1e3 / added;
            println!(
                "| {name} | {binary} | {analysed} | {:.2} | {:.1}× | {:.2} | {steady:.2} | {:.1} |",
                once.wall.as_secs_f64(),
                seconds / once.wall.as_secs_f64(),
                once.cpu.as_secs_f64() * 1e3 / analysed.max(1) as f64,
                once.peak_rss_mib.max(twice.peak_rss_mib)
            );
        }
    }
}

/// Sections to run: all, or those named on the command line (`cargo bench -p firmware
/// --bench pipeline_stages -- detection replay`): replay, detection, opencv, stages.
fn wanted(section: &str) -> bool {
    let named: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    named.is_empty() || named.iter().any(|n| n == section)
}

fn main() {
    let dir = scratch();
    let clip = clip::ensure(&workspace().join("target/bench-clip"));
    let model = firmware::models::resolve(None).expect("model");
    let mut rows: Vec<(&str, Stage)> = Vec::new();

    // First, while this process is small: a child's peak RSS (wait4's ru_maxrss) starts
    // from its parent's resident size at fork, so the replays run before the frames are
    // loaded here.
    if wanted("replay") {
        let twice = clip::ensure_repeated(&workspace().join("target/bench-clip"), 2);
        print_replays((&clip, &twice), &dir, 300);
    }

    let mut frames = Vec::new();
    let decode = per_frame(ROUNDS, 300, || {
        frames = read_all(&mut Mp4Source::open(&clip).expect("clip"));
    });
    let n = frames.len();
    assert!(n >= 300, "the bench clip has {n} frames");
    rows.push(("capture: H.264 MP4 → RGB (replay)", decode));

    let mut greys: Vec<Vec<u8>> = vec![Vec::new(); n];
    let grey = per_frame(ROUNDS, n, || {
        for (frame, grey) in frames.iter().zip(&mut greys) {
            frame.grey_into(grey);
        }
    });
    rows.push(("grey conversion", grey));

    if !(wanted("detection") || wanted("opencv") || wanted("stages")) {
        return;
    }
    let runs = detection(&model, &frames);
    print_detection("the bench clip (30 fps)", &runs);
    let demo_frames = read_all(
        &mut firmware::source::ImageFolderSource::open(
            &Path::new(env!("CARGO_MANIFEST_DIR")).join("assets/demo"),
            6.0,
        )
        .expect("demo clip"),
    );
    print_detection("the demo clip (6 fps)", &detection(&model, &demo_frames));
    drop(demo_frames);
    if wanted("opencv") {
        print_opencv(&frames, &runs[0].faces, &dir);
    }
    if !wanted("stages") {
        return;
    }
    for run in &runs {
        rows.push((run.label, run.stage));
    }
    let faces = &runs[runs.len() - 1].faces;
    let with_face: Vec<usize> = (0..n).filter(|&i| faces[i].is_some()).collect();
    // The int8 model and its float twin on the same faces: int8 must not be the slower one.
    let fp32 = model.with_file_name("lenet5-fp32.onnx");
    for (label, path) in [
        ("classify (crop + int8 LeNet-5), per face", &model),
        ("classify, the fp32 twin, per face", &fp32),
    ] {
        let mut classifier = FaceClassifier::load(path, 0.0).expect("model");
        let row = per_frame(ROUNDS, with_face.len(), || {
            for &i in &with_face {
                let grey = GreyImage::new(640, 480, &greys[i]).expect("grey frame");
                classifier
                    .classify(grey, faces[i].expect("face"))
                    .expect("classify");
            }
        });
        rows.push((label, row));
    }
    rows.extend(reweighting_refresh(&model, &greys, faces, &with_face, n));

    // The lesson estimate a frame refreshes (LEDs, overlay): a 45-minute lesson's tally at
    // 5 faces a second, corrected with the default model's shipped calibration.
    let correction = shipped_correction();
    let lesson = long_lesson_tally(45 * 60, 5);
    let floor = firmware::aggregate::EvidenceFloor::default();
    rows.push((
        "lesson estimate refresh (45-min lesson, corrected, + verdict)",
        per_frame(ROUNDS, n, || {
            for _ in 0..n {
                std::hint::black_box(lesson.estimate(Some(&correction)));
                std::hint::black_box(lesson.impression(floor, Some(&correction)));
            }
        }),
    ));

    let mut overlay = Overlay::new();
    let annotation = |i: usize| {
        Annotation::of(
            faces[i],
            Some((ekspresi_common::Expression::Happy, 0.8)),
            lesson.estimate(Some(&correction)),
            lesson.evidence(floor),
        )
    };
    let mut images: Vec<RgbImage> = frames.iter().map(|f| f.clone().into_image()).collect();
    drop(frames);
    rows.push((
        "overlay (box, labels, bars)",
        per_frame(ROUNDS, n, || {
            for (i, image) in images.iter_mut().enumerate() {
                overlay.draw(image, &annotation(i));
            }
        }),
    ));
    // Blurs copies (the same work every round), so the encoder rows get the sharp frames.
    let mut copies = images.clone();
    rows.push((
        "privacy blur (\"video\": \"blurred\")",
        per_frame(ROUNDS, n, || copies.iter_mut().for_each(blur_picture)),
    ));
    drop(copies);

    let record = |sink: Box<dyn FragmentSink>| {
        let mut recorder =
            VideoRecorder::create(sink, 640, 480, 30.0, Duration::from_secs(2)).expect("recorder");
        for (i, image) in images.iter().enumerate() {
            let at = Duration::from_secs_f64(i as f64 / 30.0);
            recorder
                .write_rgb(image.as_raw(), 640, 480, at)
                .expect("write");
        }
        recorder.finish().expect("finish");
    };
    let video = dir.join("bench.mp4");
    let recorded = per_frame(ROUNDS, n, || {
        record(Box::new(PlainFile::create(&video).expect("video")))
    });
    rows.push(("encode + fMP4 mux + fsync (recorder)", recorded));
    let sealed_dir = dir.join("sealed");
    let recipient = age::x25519::Identity::generate().to_public();
    let sealed = per_frame(ROUNDS, n, || {
        let _ = std::fs::remove_dir_all(&sealed_dir);
        std::fs::create_dir_all(&sealed_dir).expect("sealed dir");
        let sink = SealedSegments::new(&sealed_dir, vec![recipient.clone()]).expect("sink");
        record(Box::new(sink))
    });
    rows.push(("same, age-encrypted segments (encrypt_to)", sealed));
    rows.push((
        "  → encryption share",
        Stage::derived(
            sealed.wall_ms - recorded.wall_ms,
            sealed.cpu_ms - recorded.cpu_ms,
        ),
    ));
    print_stages(&rows);
    print_encoders(&images);
    drop(images);

    let model_work = ExpressionModel::load(&model, 1)
        .and_then(|m| m.multiply_adds_per_face())
        .map_or_else(
            |e| format!("unknown ({e})"),
            |macs| format!("{:.1} M", macs as f64 / 1e6),
        );
    println!("\nMachine-independent work: {} pixels encoded a frame; the model's multiply-adds a face: {model_work}; detection windows and stumps a frame: in the detection table.", 640 * 480);
}
