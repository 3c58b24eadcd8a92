//! Detector speed, ours vs OpenCV's single-threaded `detectMultiScale`, side by side in one
//! run on the same frames and parameters. Prints a table; run with
//! `cargo bench -p firmware --bench detect_speed`.
//!
//! Frames: the committed photographs scaled into 640×480 and 320×240 grey frames. OpenCV is
//! timed by `tests/parity/opencv_detect.py --time N` (per-call time inside Python, so the
//! interpreter's start-up is not counted). Without Python + cv2 only our column is printed.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use firmware::detect::{Cascade, DetectParams, Detector};
use firmware::imageio::read_grey;
use image::{imageops, GrayImage};

const REPEATS: usize = 15;

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn frames(dir: &Path) -> Vec<(String, PathBuf)> {
    let mut out = Vec::new();
    for name in ["astronaut.png", "grace_hopper.jpg", "coffee.png"] {
        let grey =
            read_grey(&workspace().join("tests/data/images").join(name)).expect("test image");
        let image = GrayImage::from_raw(
            grey.width() as u32,
            grey.height() as u32,
            grey.into_pixels(),
        )
        .unwrap();
        for (w, h) in [(640, 480), (320, 240)] {
            let frame = imageops::resize(&image, w, h, imageops::FilterType::Triangle);
            let path = dir.join(format!(
                "{}_{w}x{h}.png",
                name.split('.').next().unwrap_or(name)
            ));
            frame.save(&path).expect("write frame");
            out.push((format!("{name} {w}×{h}"), path));
        }
    }
    out
}

fn ours(path: &Path, params: DetectParams) -> (f64, usize) {
    let grey = read_grey(path).expect("frame");
    // One thread, as OpenCV is run here: the algorithm against the algorithm.
    let mut detector = Detector::with_threads(Cascade::frontal_face().unwrap(), params, 1).unwrap();
    let faces = detector.detect(grey.image()).len();
    let mut times = Vec::with_capacity(REPEATS);
    for _ in 0..REPEATS {
        let started = Instant::now();
        std::hint::black_box(detector.detect(grey.image()));
        times.push(started.elapsed().as_secs_f64());
    }
    times.sort_by(f64::total_cmp);
    (times[REPEATS / 2], faces)
}

fn opencv(paths: &[PathBuf], params: DetectParams) -> Option<Vec<(f64, usize)>> {
    let output =
        Command::new(std::env::var("EKSPRESI_PYTHON").unwrap_or_else(|_| "python3".into()))
            .arg(workspace().join("tests/parity/opencv_detect.py"))
            .args(paths)
            .arg("--cascade")
            .arg(workspace().join("firmware/assets/haarcascade_frontalface_default.xml"))
            .args(["--scale-factor", &params.scale_factor.to_string()])
            .args(["--min-neighbors", &params.min_neighbors.to_string()])
            .args(["--min-size", &params.min_size.to_string()])
            .args(["--time", &REPEATS.to_string()])
            .output()
            .ok()?;
    if !output.status.success() {
        eprintln!(
            "OpenCV column skipped: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        );
        return None;
    }
    let parsed: Vec<serde_json::Value> = serde_json::from_slice(&output.stdout).ok()?;
    Some(
        parsed
            .iter()
            .map(|e| {
                (
                    e["seconds"].as_f64().unwrap_or(f64::NAN),
                    e["faces"].as_array().map_or(0, Vec::len),
                )
            })
            .collect(),
    )
}

fn main() {
    let dir = workspace().join("target/bench-frames");
    std::fs::create_dir_all(&dir).expect("bench dir");
    let frames = frames(&dir);
    let params = DetectParams::default();
    let paths: Vec<PathBuf> = frames.iter().map(|(_, p)| p.clone()).collect();
    let reference = opencv(&paths, params);
    println!("detectMultiScale, scale 1.1, neighbours 5, min 30×30; median of {REPEATS} runs");
    println!(
        "{:<28} {:>10} {:>12} {:>7} {:>12}",
        "frame", "ours ms", "opencv ms", "ratio", "faces o/cv"
    );
    for (i, (label, path)) in frames.iter().enumerate() {
        let (ours_s, ours_faces) = ours(path, params);
        match &reference {
            Some(r) => println!(
                "{label:<28} {:>10.2} {:>12.2} {:>6.2}× {:>7}/{}",
                ours_s * 1e3,
                r[i].0 * 1e3,
                r[i].0 / ours_s,
                ours_faces,
                r[i].1
            ),
            None => println!(
                "{label:<28} {:>10.2} {:>12} {:>7} {:>12}",
                ours_s * 1e3,
                "-",
                "-",
                ours_faces
            ),
        }
    }
}
