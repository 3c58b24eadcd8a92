//! Model speed, side by side in one run: training seconds per epoch for each architecture
//! on each compiled-in burn backend (flex; libtorch with `--features tch`; batch 64,
//! augmentation on), and per-face inference latency in tract for every model
//! `firmware/models/models.json` lists, fp32 and int8. Prints two tables; run with
//! `cargo bench -p model-quant --bench model_speed` (needs ../shared/fer2013).
//!
//! Training is timed on a stratified sample of 1,400 training faces for one epoch and
//! scaled to the 25,836 faces of a full epoch (the cost is linear in faces); the epochs
//! measured during the real runs are in each run's `log.jsonl`. Inference is timed at batch
//! 1 (what the kiosk does) over 300 real test faces, fp32 and int8 interleaved in rounds so
//! that background load hits both alike. `MODEL_SPEED_EXTRA=a.onnx:b.onnx` adds other models
//! (e.g. a candidate next to the shipped one) to the same interleaved rounds.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use ekspresi_common::manifest::{fp32_twin, Manifest};
use ekspresi_common::model::ExpressionModel;
use ekspresi_common::{prepare_face, GreyImage};
use model_quant::backend::Backend;
use model_quant::data::{self, Faces, Usage};
use model_quant::nets::Arch;
use model_quant::recipe::TrainConfig;
use model_quant::run::RunDir;
use model_quant::train::train;

const FULL_EPOCH_FACES: f64 = 25_836.0;
const ROUNDS: usize = 5;

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn main() {
    let data_path = workspace().join("../shared/fer2013/fer2013.csv.gz");
    let faces = match data::load(&data_path) {
        Ok(faces) => faces,
        Err(error) => {
            eprintln!(
                "MODEL SPEED BENCH NOT RUN: FER-2013 not readable at {} ({error})",
                data_path.display()
            );
            std::process::exit(1);
        }
    };
    training_table(&faces);
    inference_table(&faces);
}

fn training_table(faces: &Faces) {
    let sample = faces.with_usage(Usage::Training).take_per_class(200);
    let (train_set, validation_set) = sample.stratified_split(0.1, 7);
    let scratch = workspace().join("target/bench-scratch/model_speed");
    println!(
        "\nTraining, one epoch of {} faces, scaled to a full epoch of {FULL_EPOCH_FACES} faces\n",
        train_set.len()
    );
    println!("| backend | architecture | parameters | s / 1,000 faces | s / full epoch (est.) |");
    println!("|---|---|---:|---:|---:|");
    // MODEL_SPEED_ARCHS=lenet5-wide,vgg limits the table (every arch by default).
    let wanted = std::env::var("MODEL_SPEED_ARCHS").unwrap_or_default();
    let archs: Vec<&str> = Arch::NAMES
        .into_iter()
        .filter(|name| wanted.is_empty() || wanted.split(',').any(|w| w == *name))
        .collect();
    // Backends side by side per architecture, so their ratio comes from one stretch of time.
    for name in archs {
        for backend in Backend::compiled() {
            let arch = Arch::by_name(name).expect("architecture");
            let config = TrainConfig {
                epochs: 1,
                seed: 7,
                ..TrainConfig::paper(arch.clone())
            };
            let run = scratch.join(format!("{name}-{}", backend.name()));
            let _ = std::fs::remove_dir_all(&run);
            let log = train(
                &config,
                &train_set,
                &validation_set,
                &RunDir::new(&run),
                false,
                backend,
            )
            .expect("training");
            let seconds = log.last().map_or(f64::NAN, |entry| entry.seconds);
            let per_face = seconds / train_set.len() as f64;
            println!(
                "| {} | {name} | {} | {:.2} | {:.0} |",
                backend.name(),
                arch.parameter_count(),
                per_face * 1e3,
                per_face * FULL_EPOCH_FACES
            );
        }
    }
}

fn inference_table(faces: &Faces) {
    let test = faces.with_usage(Usage::PublicTest);
    let inputs: Vec<Vec<f32>> = (0..300.min(test.len()))
        .map(|i| prepare_face(GreyImage::new(48, 48, test.face(i)).expect("48×48 face")))
        .collect();
    let models_dir = workspace().join("firmware/models");
    let extra = std::env::var("MODEL_SPEED_EXTRA").unwrap_or_default();
    let mut models: Vec<(PathBuf, ExpressionModel)> = Vec::new();
    for path in shipped_models().into_iter().chain(
        extra
            .split(':')
            .filter(|p| !p.is_empty())
            .map(PathBuf::from),
    ) {
        if path.exists() {
            let model = ExpressionModel::load(&path, 1).expect("model");
            models.push((path, model));
        }
    }
    let mut totals = vec![Duration::ZERO; models.len()];
    for _ in 0..ROUNDS {
        for (total, (_, model)) in totals.iter_mut().zip(&models) {
            let started = Instant::now();
            for input in &inputs {
                model.classify(input).expect("inference");
            }
            *total += started.elapsed();
        }
    }
    println!(
        "\nInference in tract, batch 1, {} faces × {ROUNDS} interleaved rounds\n",
        inputs.len()
    );
    println!("| model | size | µs / face |");
    println!("|---|---:|---:|");
    for ((path, _), total) in models.iter().zip(&totals) {
        let size = std::fs::metadata(path).map_or(0, |m| m.len());
        let name = path.strip_prefix(&models_dir).unwrap_or(path).display();
        println!(
            "| {name} | {} kB | {:.0} |",
            size / 1024,
            total.as_secs_f64() * 1e6 / (inputs.len() * ROUNDS) as f64
        );
    }
}

/// Every model `firmware/models/models.json` lists, each as its fp32 twin then its int8 file.
fn shipped_models() -> Vec<PathBuf> {
    let models_dir = workspace().join("firmware/models");
    let manifest = Manifest::read(&models_dir).expect("firmware/models/models.json reads");
    manifest
        .models
        .iter()
        .flat_map(|model| {
            let int8 = workspace().join(&model.file);
            let fp32 = fp32_twin(&int8).expect("a listed model is named STEM-int8.onnx");
            [fp32, int8]
        })
        .collect()
}
