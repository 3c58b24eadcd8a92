//! Parity of our Haar cascade evaluator with real OpenCV `detectMultiScale` (same cascade,
//! same parameters): on real photographs and on real FER-2013 faces padded into larger
//! frames, ≥ 98 % of OpenCV's detections are matched by ours at IoU ≥ 0.5 and no more than
//! 2 % of ours are extra.

use std::path::{Path, PathBuf};
use std::process::Command;

use ekspresi_tests::{fer2013, python_with_opencv, scratch_dir, test_image, workspace};
use firmware::detect::{Cascade, DetectParams, Detector, Rect};
use firmware::imageio::read_grey;
use image::{imageops, GrayImage, Luma};
use model_quant::data::{self, Usage};

#[derive(serde::Deserialize)]
struct Reference {
    image: String,
    faces: Vec<[i32; 4]>,
}

fn rect(f: &[i32; 4]) -> Rect {
    Rect {
        x: f[0],
        y: f[1],
        width: f[2],
        height: f[3],
    }
}

/// Real FER faces, enlarged and placed into larger grey frames at varying positions.
fn padded_fer_frames(dir: &Path, count: usize) -> Vec<PathBuf> {
    let faces = data::load(&fer2013())
        .expect("FER-2013 loads")
        .with_usage(Usage::PublicTest);
    let step = faces.len() / count;
    (0..count)
        .map(|i| {
            let face = GrayImage::from_raw(48, 48, faces.face(i * step).to_vec()).unwrap();
            let side = 72 + (i as u32 % 5) * 24;
            let big = imageops::resize(&face, side, side, imageops::FilterType::Triangle);
            let (w, h) = if i % 2 == 0 { (320, 240) } else { (640, 480) };
            let mut frame = GrayImage::from_pixel(w, h, Luma([90 + (i as u8 % 4) * 30]));
            let x = (i as u32 * 37) % (w - side);
            let y = (i as u32 * 23) % (h - side);
            imageops::overlay(&mut frame, &big, i64::from(x), i64::from(y));
            let path = dir.join(format!("fer_{i:03}.png"));
            frame.save(&path).unwrap();
            path
        })
        .collect()
}

fn opencv(images: &[PathBuf], params: &DetectParams) -> Vec<Reference> {
    let script = workspace().join("tests/parity/opencv_detect.py");
    let cascade = workspace().join("firmware/assets/haarcascade_frontalface_default.xml");
    let output = Command::new(python_with_opencv())
        .arg(&script)
        .args(images)
        .arg("--cascade")
        .arg(&cascade)
        .args(["--scale-factor", &params.scale_factor.to_string()])
        .args(["--min-neighbors", &params.min_neighbors.to_string()])
        .args(["--min-size", &params.min_size.to_string()])
        .output()
        .expect("python runs");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("reference JSON")
}

struct Tally {
    reference: usize,
    matched: usize,
    ours: usize,
    extra: usize,
}

fn compare(images: &[PathBuf], params: DetectParams) -> Tally {
    let mut detector = Detector::new(Cascade::frontal_face().unwrap(), params).unwrap();
    let mut tally = Tally {
        reference: 0,
        matched: 0,
        ours: 0,
        extra: 0,
    };
    for reference in opencv(images, &params) {
        let grey = read_grey(Path::new(&reference.image)).unwrap();
        let ours = detector.detect(grey.image());
        let theirs: Vec<Rect> = reference.faces.iter().map(rect).collect();
        let matched = theirs
            .iter()
            .filter(|t| ours.iter().any(|o| o.iou(t) >= 0.5))
            .count();
        let extra = ours
            .iter()
            .filter(|o| !theirs.iter().any(|t| o.iou(t) >= 0.5))
            .count();
        if matched < theirs.len() || extra > 0 {
            eprintln!("{}: opencv {:?} ours {:?}", reference.image, theirs, ours);
        }
        tally.reference += theirs.len();
        tally.matched += matched;
        tally.ours += ours.len();
        tally.extra += extra;
    }
    tally
}

fn all_images(scratch: &str) -> Vec<PathBuf> {
    let dir = scratch_dir(scratch);
    let mut images: Vec<PathBuf> = [
        "astronaut.png",
        "camera.png",
        "coffee.png",
        "chelsea.png",
        "grace_hopper.jpg",
    ]
    .iter()
    .map(|n| test_image(n))
    .collect();
    images.extend(padded_fer_frames(&dir, 60));
    images
}

#[test]
fn matches_opencv_with_default_parameters() {
    let tally = compare(&all_images("parity_default"), DetectParams::default());
    eprintln!(
        "opencv {} boxes, matched {}; ours {} boxes, extra {}",
        tally.reference, tally.matched, tally.ours, tally.extra
    );
    assert!(
        tally.reference >= 30,
        "too few reference faces to judge: {}",
        tally.reference
    );
    assert!(tally.matched as f64 >= 0.98 * tally.reference as f64);
    assert!(tally.extra as f64 <= 0.02 * tally.ours as f64);
}

#[test]
fn matches_opencv_with_other_parameters() {
    let params = DetectParams {
        scale_factor: 1.2,
        min_neighbors: 3,
        min_size: 40,
        max_size: None,
    };
    let tally = compare(&all_images("parity_other"), params);
    eprintln!(
        "opencv {} boxes, matched {}; ours {} boxes, extra {}",
        tally.reference, tally.matched, tally.ours, tally.extra
    );
    assert!(tally.reference >= 30);
    assert!(tally.matched as f64 >= 0.98 * tally.reference as f64);
    assert!(tally.extra as f64 <= 0.02 * tally.ours as f64);
}
