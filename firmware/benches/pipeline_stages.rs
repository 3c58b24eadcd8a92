//! Per-stage cost of the kiosk pipeline per 640×480 frame, and replay speed as a multiple
//! of real time, measured side by side in one run on the bundled demo clip (48 frames,
//! 6 fps). Prints a table; run with `cargo bench -p firmware --bench pipeline_stages`.
//!
//! Stages: capture decode (JPEG still → RGB, and H.264 MP4 → RGB as in `kiosk replay`),
//! grey conversion, Haar detection, classification (crop + shared preprocessing + int8
//! model), overlay drawing, the privacy mode's whole-picture blur, H.264 encoding alone, and encode + fragmented-MP4 mux + fsync
//! as the recorder does it. The last line runs whole lessons through `Kiosk::run_lessons`
//! (capture, analysis and encoder threads together, as on the device).
//!
//! Beside each time, the heap allocations per frame: a counting global allocator counts
//! every `alloc` of the round (the fewest of the rounds), so what a stage allocates in steady
//! state is visible (the goal for the analysis loop is none).

use std::alloc::{GlobalAlloc, Layout, System};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use firmware::classify::FaceClassifier;
use firmware::config::KioskConfig;
use firmware::detect::{Cascade, DetectParams, Detector, FaceTracker, GreyImage};
use firmware::devices::{simulated_leds, Frame, FrameSource};
use firmware::mp4::{FragmentSink, PlainFile, VideoRecorder};
use firmware::pipeline::Kiosk;
use firmware::record::overlay::{Annotation, Overlay};
use firmware::record::privacy::blur_picture;
use firmware::seal::SealedSegments;
use firmware::source::{ImageFolderSource, Mp4Source};
use image::RgbImage;

const ROUNDS: usize = 3;

/// The system allocator, counting allocations.
struct Counting;

static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);

// SAFETY: forwards every call unchanged to the system allocator; only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: the caller's contract for `alloc` is passed on as it is.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from `System.alloc` with this layout (through `alloc` above).
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: as for `alloc` and `dealloc`.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// One row of the table: time per frame and heap allocations per frame.
#[derive(Clone, Copy)]
struct Stage {
    ms: f64,
    allocations: Option<f64>,
}

fn demo_clip() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("assets/demo")
}

fn scratch() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/bench-scratch");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("scratch dir");
    dir
}

fn read_all(source: &mut dyn FrameSource) -> (Vec<Frame>, Duration) {
    let started = Instant::now();
    let mut frames = Vec::new();
    while let Some(frame) = source.next_frame().expect("frame") {
        frames.push(frame);
    }
    (frames, started.elapsed())
}

/// Best of ROUNDS of the per-frame mean (the least disturbed by other load), and the
/// fewest allocations per frame of a round.
fn per_frame(frames: usize, mut round: impl FnMut() -> Duration) -> Stage {
    let mut best = Stage {
        ms: f64::INFINITY,
        allocations: Some(f64::INFINITY),
    };
    for _ in 0..ROUNDS {
        let before = ALLOCATIONS.load(Ordering::Relaxed);
        let ms = round().as_secs_f64() * 1e3 / frames as f64;
        let allocations = (ALLOCATIONS.load(Ordering::Relaxed) - before) as f64 / frames as f64;
        best.ms = best.ms.min(ms);
        best.allocations = best.allocations.map(|a| a.min(allocations));
    }
    best
}

/// A derived row (a difference of two measured ones): no allocation count of its own.
fn derived(ms: f64) -> Stage {
    Stage {
        ms: ms.max(0.0),
        allocations: None,
    }
}

fn main() {
    let dir = scratch();
    let model = firmware::models::resolve(None).expect("model");
    let clip = demo_clip();
    let mut rows: Vec<(&str, Stage)> = Vec::new();

    let jpeg_ms = per_frame(48, || {
        read_all(&mut ImageFolderSource::open(&clip, 6.0).expect("clip")).1
    });
    rows.push(("capture: JPEG still → RGB", jpeg_ms));
    let (frames, _) = read_all(&mut ImageFolderSource::open(&clip, 6.0).expect("clip"));
    let n = frames.len();

    // Into buffers reused round after round, as the kiosk reuses its one grey buffer.
    let mut greys: Vec<Vec<u8>> = vec![Vec::new(); n];
    let grey_ms = per_frame(n, || {
        let started = Instant::now();
        for (frame, grey) in frames.iter().zip(&mut greys) {
            frame.grey_into(grey);
        }
        started.elapsed()
    });
    rows.push(("grey conversion", grey_ms));

    let mut detector = Detector::new(
        Cascade::frontal_face().expect("cascade"),
        DetectParams::default(),
    )
    .expect("detector");
    let grey_frame = |i: usize| {
        GreyImage::new(frames[i].width(), frames[i].height(), &greys[i]).expect("grey frame")
    };
    let mut faces = Vec::new();
    let detect_ms = per_frame(n, || {
        let started = Instant::now();
        faces = (0..n)
            .map(|i| {
                detector
                    .detect(grey_frame(i))
                    .into_iter()
                    .max_by_key(|r| r.area())
            })
            .collect();
        started.elapsed()
    });
    rows.push(("detect (Haar, 640×480), full scan", detect_ms));

    // The same frames with tracking: a full scan every 10th frame, else near the last face.
    let mut tracked_found = 0;
    let tracked_ms = per_frame(n, || {
        let mut tracker = FaceTracker::default();
        let started = Instant::now();
        tracked_found = 0;
        for i in 0..n {
            let groups = tracker.detect(&mut detector, grey_frame(i), 10);
            let face = groups
                .iter()
                .max_by_key(|g| (g.neighbors, g.rect.area()))
                .map(|g| g.rect);
            tracked_found += usize::from(face.is_some());
            tracker.follow(face);
        }
        started.elapsed()
    });
    rows.push(("detect, tracking (full scan every 10th)", tracked_ms));

    let mut classifier = FaceClassifier::load(&model, 0.0).expect("model");
    let with_face: Vec<usize> = (0..n).filter(|&i| faces[i].is_some()).collect();
    let classify_ms = per_frame(with_face.len(), || {
        let started = Instant::now();
        for &i in &with_face {
            let face = faces[i].expect("face");
            classifier.classify(grey_frame(i), face).expect("classify");
        }
        started.elapsed()
    });
    rows.push(("classify (crop + int8 LeNet-5)", classify_ms));

    let overlay = Overlay::new();
    let annotation = |i: usize| Annotation {
        face: faces[i],
        now: Some((ekspresi_common::Expression::Happy, 0.8)),
        lesson_percentages: [10.0, 0.0, 5.0, 50.0, 15.0, 10.0, 10.0],
        impression: firmware::aggregate::Impression::Good,
        evidence: firmware::aggregate::Tally::default()
            .evidence(firmware::aggregate::EvidenceFloor::default()),
    };
    let mut images: Vec<RgbImage> = frames.iter().map(|f| f.clone().into_image()).collect();
    let overlay_ms = per_frame(n, || {
        let started = Instant::now();
        for (i, image) in images.iter_mut().enumerate() {
            overlay.draw(image, &annotation(i));
        }
        started.elapsed()
    });
    rows.push(("overlay (box, labels, bars)", overlay_ms));

    // Blurs copies (the same work every round), so the encoder rows below still get the
    // sharp annotated frames.
    let mut copies = images.clone();
    let blur_ms = per_frame(n, || {
        let started = Instant::now();
        for image in &mut copies {
            blur_picture(image);
        }
        started.elapsed()
    });
    rows.push(("privacy blur (\"video\": \"blurred\")", blur_ms));

    let encode_ms = per_frame(n, || {
        let mut encoder = openh264::encoder::Encoder::new().expect("encoder");
        let started = Instant::now();
        for image in &images {
            let rgb = openh264::formats::RgbSliceU8::new(image.as_raw(), (640, 480));
            let yuv = openh264::formats::YUVBuffer::from_rgb_source(rgb);
            encoder.encode(&yuv).expect("encode");
        }
        started.elapsed()
    });
    rows.push(("encode (OpenH264) alone", encode_ms));

    let video = dir.join("bench.mp4");
    let record = |sink: Box<dyn FragmentSink>| {
        let keyframes = Duration::from_secs(2);
        let mut recorder = VideoRecorder::create(sink, 640, 480, 6.0, keyframes).expect("recorder");
        let started = Instant::now();
        for (i, image) in images.iter().enumerate() {
            let at = Duration::from_secs_f64(i as f64 / 6.0);
            recorder
                .write_rgb(image.as_raw(), 640, 480, at)
                .expect("write");
        }
        recorder.finish().expect("finish");
        started.elapsed()
    };
    let record_ms = per_frame(n, || {
        record(Box::new(PlainFile::create(&video).expect("video")))
    });
    rows.push(("encode + fMP4 mux + fsync (recorder)", record_ms));
    rows.push((
        "  → mux + fsync share",
        derived(record_ms.ms - encode_ms.ms),
    ));
    let sealed_dir = dir.join("sealed");
    let recipient = age::x25519::Identity::generate().to_public();
    let sealed_ms = per_frame(n, || {
        let _ = std::fs::remove_dir_all(&sealed_dir);
        std::fs::create_dir_all(&sealed_dir).expect("sealed dir");
        let sink = SealedSegments::new(&sealed_dir, vec![recipient.clone()]).expect("sink");
        record(Box::new(sink))
    });
    let encryption_share = derived(sealed_ms.ms - record_ms.ms);
    rows.push(("same, age-encrypted segments (encrypt_to)", sealed_ms));
    rows.push(("  → encryption share", encryption_share));

    let mp4_ms = per_frame(n, || read_all(&mut Mp4Source::open(&video).expect("mp4")).1);
    rows.push(("capture: H.264 MP4 → RGB (replay)", mp4_ms));

    let full_found = faces.iter().filter(|f| f.is_some()).count();
    println!(
        "\nFrames with a face: {full_found} of {n} by full scans, {tracked_found} with tracking"
    );
    println!("\nPer-stage cost per 640×480 frame (best of {ROUNDS} rounds over the {n}-frame demo clip)\n");
    println!("| stage | ms/frame | heap allocations/frame |");
    println!("|---|---:|---:|");
    for (stage, row) in &rows {
        let allocations = row
            .allocations
            .map_or_else(|| "–".to_owned(), |a| format!("{a:.1}"));
        println!("| {stage} | {:.2} | {allocations} |", row.ms);
    }

    let clip_seconds = n as f64 / 6.0;
    let mut lesson_seconds = f64::INFINITY;
    for round in 0..ROUNDS {
        let config = KioskConfig {
            data_dir: dir.join(format!("lesson{round}")),
            ..KioskConfig::default()
        };
        let (leds, _) = simulated_leds();
        let mut kiosk = Kiosk::new(config, model.clone(), leds).expect("kiosk");
        let source = ImageFolderSource::open(&clip, 6.0).expect("clip");
        let started = Instant::now();
        kiosk
            .run_lessons(Box::new(source), Arc::new(AtomicBool::new(false)))
            .expect("lesson");
        lesson_seconds = lesson_seconds.min(started.elapsed().as_secs_f64());
    }
    println!(
        "\nWhole replay (kiosk pipeline, recording on): {n} frames = {clip_seconds:.1} s of \
         clip in {lesson_seconds:.2} s → {:.1}× real time ({:.1} frames/s)",
        clip_seconds / lesson_seconds,
        n as f64 / lesson_seconds
    );
}
