//! Fuzzing every parser of outside data, on stable Rust (proptest): the MP4 reader and the
//! start-up repair, the config, `clip.json`, the cascade loader and model loading. Each
//! input is a real file (the corpus: a recording the kiosk made, the deploy config, the
//! demo's clip.json, the shipped cascade and model) with a few edits (`ekspresi_tests::mutate`).
//! A clear error is a pass; a panic, an abort or a run over the time limit fails the test,
//! proptest shrinks it to the fewest edits, and `tests/tests/fuzz.regressions` replays it
//! first on every later run (commit that file: it is the regression corpus).
//!
//! Cases per target: the defaults below (CI's short run, ~10 s) times `EKSPRESI_FUZZ_SCALE`
//! (`scripts/fuzz.sh` runs a long one and prints the inputs tried).

use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::time::Duration;

use ekspresi_tests::mutate::{apply, binary_edits, text_edits, Edit};
use ekspresi_tests::{scratch_dir, workspace};
use firmware::config::KioskConfig;
use firmware::detect::{Cascade, DetectParams, Detector, GreyImage};
use firmware::devices::FrameSource;
use firmware::source::{ImageFolderSource, Mp4Source};
use proptest::prelude::*;
use proptest::test_runner::{Config, FileFailurePersistence, TestRunner};

/// Longest a single input may take before it counts as a hang.
const TIME_LIMIT: Duration = Duration::from_secs(20);

fn corpus(name: &str) -> Vec<u8> {
    let path = workspace().join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("corpus file {}: {e}", path.display()))
}

/// Runs `job` on its own thread: its panic is re-raised here, and a run over
/// [`TIME_LIMIT`] fails as a hang (the thread is left behind; the test fails anyway).
fn bounded<T: Send + 'static>(what: &str, job: impl FnOnce() -> T + Send + 'static) -> T {
    let (done, result) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = done.send(std::panic::catch_unwind(AssertUnwindSafe(job)));
    });
    match result.recv_timeout(TIME_LIMIT) {
        Ok(Ok(value)) => value,
        Ok(Err(panic)) => std::panic::resume_unwind(panic),
        Err(_) => panic!("{what}: no result after {TIME_LIMIT:?} (a hang)"),
    }
}

/// Runs `case` on `default_cases` edit lists from `edits` (times `EKSPRESI_FUZZ_SCALE`),
/// with proptest's shrinking and its failure file (see the module doc), and prints how many
/// inputs were tried.
fn fuzz<S: Strategy<Value = Vec<Edit>>>(
    name: &str,
    default_cases: u32,
    edits: S,
    case: impl Fn(&[Edit]),
) {
    let scale: u32 = std::env::var("EKSPRESI_FUZZ_SCALE")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1);
    let cases = default_cases.saturating_mul(scale.max(1));
    let config = Config {
        cases,
        // Shrinking replays the failing input many times; keep that bounded too.
        max_shrink_iters: 256,
        source_file: Some(file!()),
        failure_persistence: Some(Box::new(FileFailurePersistence::WithSource("regressions"))),
        ..Config::default()
    };
    let tried = AtomicU64::new(0);
    let mut runner = TestRunner::new(config);
    let outcome = runner.run(&edits, |edits| {
        tried.fetch_add(1, Ordering::Relaxed);
        case(&edits);
        Ok(())
    });
    if let Err(failure) = outcome {
        panic!("fuzz {name}: {failure}");
    }
    println!(
        "fuzz {name}: {} inputs tried (shrinking included), 0 crashes",
        tried.load(Ordering::Relaxed)
    );
}

/// A fresh file for one input (a test's cases run one after another).
fn input_file(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, bytes).expect("write fuzz input");
    path
}

/// Opens `path` as the kiosk's replay does and decodes at most `limit` frames.
fn read_mp4(path: &Path, limit: usize) {
    let Ok(mut source) = Mp4Source::open(path) else {
        return;
    };
    for _ in 0..limit {
        match source.next_frame() {
            Ok(Some(_)) => {}
            Ok(None) | Err(_) => return,
        }
    }
}

#[test]
fn mp4_reader_and_repair_survive_mutated_recordings() {
    let dir = scratch_dir("fuzz_mp4");
    let recording = corpus("tests/data/fuzz/corpus/kiosk-8-frames.mp4");
    fuzz("mp4", 300, binary_edits(), |edits| {
        let path = input_file(&dir, "input.mp4", &apply(&recording, edits));
        let repaired = path.clone();
        bounded("mp4 read", move || read_mp4(&path, 16));
        // Start-up repair, then the repaired file read again (what a restart does).
        bounded("mp4 repair", move || {
            if let Ok(repair) = firmware::mp4::repair(&repaired) {
                assert!(repair.kept_len <= repair.original_len);
                read_mp4(&repaired, 16);
            }
        });
    });
}

#[test]
fn config_parsing_and_validation_survive_mutated_configs() {
    let config = corpus("board/deploy/config.json");
    fuzz("config", 2000, text_edits(), |edits| {
        let bytes = apply(&config, edits);
        bounded("config", move || {
            let Ok(text) = String::from_utf8(bytes) else {
                return;
            };
            if let Ok(config) = serde_json::from_str::<KioskConfig>(&text) {
                let _ = config.validate();
            }
        });
    });
}

#[test]
fn clip_folders_survive_mutated_clip_json() {
    let clip = scratch_dir("fuzz_clip");
    let frame = workspace().join("firmware/assets/demo/frame_0000.jpg");
    std::fs::copy(frame, clip.join("frame_0000.jpg")).expect("demo frame");
    let clip_json = corpus("firmware/assets/demo/clip.json");
    fuzz("clip.json", 300, text_edits(), |edits| {
        input_file(&clip, "clip.json", &apply(&clip_json, edits));
        let clip = clip.clone();
        bounded("clip.json", move || {
            if let Ok(mut source) = ImageFolderSource::open(&clip, 10.0) {
                let _ = source.next_frame();
                let _ = source.next_frame();
            }
        });
    });
}

#[test]
fn cascade_loading_and_detection_survive_mutated_cascades() {
    let xml = corpus("firmware/assets/haarcascade_frontalface_default.xml");
    fuzz("cascade", 60, text_edits(), |edits| {
        let bytes = apply(&xml, edits);
        bounded("cascade", move || {
            let Ok(text) = String::from_utf8(bytes) else {
                return;
            };
            let Ok(cascade) = Cascade::from_xml(&text) else {
                return;
            };
            // A cascade that loads must also scan a frame without harm.
            let Ok(mut detector) = Detector::new(cascade, DetectParams::default()) else {
                return;
            };
            let grey = vec![128u8; 160 * 120];
            if let Ok(frame) = GreyImage::new(160, 120, &grey) {
                let _ = detector.detect(frame);
            }
        });
    });
}

#[test]
fn model_loading_survives_mutated_models() {
    let onnx = corpus("firmware/models/lenet5-int8.onnx");
    fuzz("model", 40, binary_edits(), |edits| {
        let bytes = apply(&onnx, edits);
        bounded("model", move || {
            if let Ok(model) = ekspresi_common::model::ExpressionModel::from_bytes(&bytes, 1) {
                // A model that loads has passed the probe: its outputs are probabilities.
                let face = vec![0.25f32; ekspresi_common::contract::INPUT_LEN];
                if let Ok(rows) = model.classify(&face) {
                    assert!(rows[0].iter().all(|p| p.is_finite()));
                }
            }
        });
    });
}
