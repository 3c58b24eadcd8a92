//! Training loop (burn with autodiff, on a [`Backend`] chosen at run time): Adam with a cosine
//! learning-rate decay, shuffled and augmented batches, per-epoch validation, best epoch
//! kept by validation accuracy, optional early stop, and a checkpoint every epoch so a run
//! resumes where it stopped (`--resume`).
//!
//! A run directory holds `config.json`, `log.jsonl` (one line per epoch), `training.png`
//! (accuracy and loss per epoch), `checkpoint/` (last epoch: model, optimizer, state) and
//! `best.bpk` (the best epoch's model).

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context, Result};
use burn::module::Module;
use burn::nn::loss::{CrossEntropyLoss, CrossEntropyLossConfig};
use burn::optim::{AdamConfig, GradientsParams};
use burn::store::{BurnpackStore, ModuleSnapshot};
use burn::tensor::{Device, Int, Tensor, TensorData};
use ekspresi_common::contract::NUM_CLASSES;
use ekspresi_common::{prepare_face_into, GreyImage, FACE_SIDE};
use image::GrayImage;
use indicatif::{ProgressBar, ProgressStyle};
use rand::seq::SliceRandom;
use rand::SeedableRng;
use serde::{Deserialize, Serialize};

use crate::augment::{self, AugmentConfig, Transform};
use crate::backend::Backend;
use crate::chart;
use crate::data::{Faces, FACE_LEN};
use crate::fsutil::write_atomically;
use crate::nets::{Arch, Net};

/// Everything that defines a training run; saved as the run's `config.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TrainConfig {
    pub arch: Arch,
    pub epochs: usize,
    pub batch_size: usize,
    pub learning_rate: f64,
    /// Cosine decay ends at this learning rate on the last epoch.
    pub min_learning_rate: f64,
    pub weight_decay: Option<f32>,
    /// Label smoothing of the cross-entropy (0 disables).
    pub label_smoothing: f32,
    /// Weight the loss by inverse class frequency (helps the rare `disgust`).
    pub class_weights: bool,
    pub augment: Option<AugmentConfig>,
    /// Stop when validation accuracy has not improved for this many epochs.
    pub patience: Option<usize>,
    /// Seeds the weights, the shuffling, the augmentation and the validation split.
    pub seed: u64,
    /// How the faces were carved from `Training` (runs saved before this field: the defaults).
    #[serde(default)]
    pub split: SplitConfig,
}

/// Which `Training` faces a run learns from and which it holds out for validation.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct SplitConfig {
    /// Fraction of each class held out for validation (stratified, seeded by the run's seed).
    pub validation_fraction: f64,
    /// Only the first N faces of each class (small runs, CI).
    pub limit_per_class: Option<usize>,
}

impl Default for SplitConfig {
    fn default() -> Self {
        Self {
            validation_fraction: 0.1,
            limit_per_class: None,
        }
    }
}

impl TrainConfig {
    /// The paper's recipe for `arch`: Adam, batch 64, 50 epochs, learning rate 1e-3 (cosine
    /// to 1e-5), its augmentation, no other regulariser options, seed 42.
    pub fn paper(arch: Arch) -> Self {
        Self {
            arch,
            epochs: 50,
            batch_size: 64,
            learning_rate: 1e-3,
            min_learning_rate: 1e-5,
            weight_decay: None,
            label_smoothing: 0.0,
            class_weights: false,
            augment: Some(AugmentConfig::default()),
            patience: None,
            seed: 42,
            split: SplitConfig::default(),
        }
    }

    /// (train, validation) faces of this run, carved from `training` (the `Training` rows).
    pub fn split_faces(&self, training: &Faces) -> (Faces, Faces) {
        let training = match self.split.limit_per_class {
            Some(n) => training.take_per_class(n),
            None => training.clone(),
        };
        training.stratified_split(self.split.validation_fraction, self.seed)
    }
}

/// One line of `log.jsonl`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EpochLog {
    pub epoch: usize,
    pub train_loss: f64,
    /// Accuracy on the (augmented) training batches, as Keras reports it.
    pub train_accuracy: f64,
    pub validation_loss: f64,
    pub validation_accuracy: f64,
    pub learning_rate: f64,
    pub seconds: f64,
}

/// What `checkpoint/state.json` records.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct RunState {
    epochs_done: usize,
    best_epoch: usize,
    best_validation_accuracy: f64,
}

/// Where a run keeps its files.
pub struct RunDir(PathBuf);

impl RunDir {
    pub fn new(path: &Path) -> Self {
        Self(path.to_owned())
    }
    fn config(&self) -> PathBuf {
        self.0.join("config.json")
    }
    fn log(&self) -> PathBuf {
        self.0.join("log.jsonl")
    }
    fn chart(&self) -> PathBuf {
        self.0.join("training.png")
    }
    fn checkpoint(&self) -> PathBuf {
        self.0.join("checkpoint")
    }
    /// The best epoch's weights.
    pub fn best_model(&self) -> PathBuf {
        self.0.join("best.bpk")
    }

    /// The run's saved configuration.
    pub fn load_config(&self) -> Result<TrainConfig> {
        let path = self.config();
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        serde_json::from_str(&text)
            .with_context(|| format!("{} is not a training config", path.display()))
    }

    pub fn load_log(&self) -> Result<Vec<EpochLog>> {
        let path = self.log();
        if !path.exists() {
            return Ok(Vec::new());
        }
        let text = std::fs::read_to_string(&path)?;
        text.lines()
            .filter(|l| !l.trim().is_empty())
            .enumerate()
            .map(|(i, l)| {
                serde_json::from_str(l)
                    .with_context(|| format!("{}:{}: bad log line", path.display(), i + 1))
            })
            .collect()
    }
}

/// Trains `config` on `train`, selecting on `validation`, in `run`. With `resume`, continues
/// from the run's last checkpoint (its `config.json` must match `config.arch`).
pub fn train(
    config: &TrainConfig,
    train: &Faces,
    validation: &Faces,
    run: &RunDir,
    resume: bool,
    backend: Backend,
) -> Result<Vec<EpochLog>> {
    std::fs::create_dir_all(&run.0)
        .with_context(|| format!("cannot create run directory {}", run.0.display()))?;
    let device = backend.device().autodiff();
    // Seeds burn's generator too (weight initialisation, dropout masks).
    device.seed(config.seed);
    let mut model = Net::new(&config.arch, &device);
    let mut optimizer = optimizer(config);
    let mut state = RunState {
        epochs_done: 0,
        best_epoch: 0,
        best_validation_accuracy: -1.0,
    };
    let mut log = Vec::new();
    if resume && run.checkpoint().join("state.json").exists() {
        let saved = run.load_config()?;
        if saved.arch != config.arch {
            bail!(
                "--resume: {} was trained with another architecture",
                run.0.display()
            );
        }
        // Another split or seed would validate on faces the run has trained on.
        if saved.split != config.split || saved.seed != config.seed {
            bail!(
                "--resume: {} was trained on another split or seed",
                run.0.display()
            );
        }
        if saved.epochs != config.epochs {
            // The cosine schedule follows the new length from here; config.json says so.
            tracing::warn!(
                from = saved.epochs,
                to = config.epochs,
                "--resume with another epoch count"
            );
            write_atomically(
                &run.config(),
                serde_json::to_string_pretty(config)?.as_bytes(),
            )?;
        }
        state = load_checkpoint(&run.checkpoint(), &mut model)?;
        optimizer = optimizer
            .load(run.checkpoint().join("optimizer.bin"))
            .map_err(|e| anyhow::anyhow!("cannot load optimizer state: {e}"))?;
        log = run.load_log()?;
        log.truncate(state.epochs_done);
        tracing::info!(epochs_done = state.epochs_done, "resuming");
    } else {
        write_atomically(
            &run.config(),
            serde_json::to_string_pretty(config)?.as_bytes(),
        )?;
        write_atomically(&run.log(), b"")?;
    }

    let loss_fn = loss_function(config, train, &device);
    let mut since_best = state.epochs_done - state.best_epoch.min(state.epochs_done);
    for epoch in state.epochs_done + 1..=config.epochs {
        let started = Instant::now();
        let (trained, train_loss, train_accuracy, learning_rate) = train_epoch(
            config,
            model,
            &mut optimizer,
            &loss_fn,
            train,
            epoch,
            &device,
        );
        model = trained;
        let (validation_loss, validation_accuracy) = evaluate(&model.valid(), validation);
        let entry = EpochLog {
            epoch,
            train_loss,
            train_accuracy,
            validation_loss,
            validation_accuracy,
            learning_rate,
            seconds: started.elapsed().as_secs_f64(),
        };
        tracing::info!(?entry, "epoch done");
        if validation_accuracy > state.best_validation_accuracy {
            state.best_validation_accuracy = validation_accuracy;
            state.best_epoch = epoch;
            save_model(&model, &run.best_model())?;
            since_best = 0;
        } else {
            since_best += 1;
        }
        state.epochs_done = epoch;
        log.push(entry);
        save_checkpoint(run, &model, &optimizer, &state, &log)?;
        if config.patience.is_some_and(|p| since_best >= p) {
            tracing::info!(epoch, best_epoch = state.best_epoch, "early stop");
            break;
        }
    }
    Ok(log)
}

fn optimizer(config: &TrainConfig) -> burn::optim::ModuleOptimizer {
    let mut adam = AdamConfig::new();
    if let Some(decay) = config.weight_decay {
        adam = adam.with_weight_decay(Some(burn::optim::decay::WeightDecayConfig::new(decay)));
    }
    adam.init()
}

fn loss_function(config: &TrainConfig, train: &Faces, device: &Device) -> CrossEntropyLoss {
    let mut loss = CrossEntropyLossConfig::new();
    if config.label_smoothing > 0.0 {
        loss = loss.with_smoothing(Some(config.label_smoothing));
    }
    if config.class_weights {
        loss = loss.with_weights(Some(inverse_frequency_weights(&train.class_counts())));
    }
    loss.init(device)
}

/// Weights proportional to 1 / class frequency, normalised to mean 1, capped at 10 so the
/// 436 `disgust` faces do not dominate.
fn inverse_frequency_weights(counts: &[usize; 7]) -> Vec<f32> {
    let total: usize = counts.iter().sum();
    let raw: Vec<f32> = counts
        .iter()
        .map(|&c| total as f32 / (7.0 * c.max(1) as f32))
        .map(|w| w.min(10.0))
        .collect();
    let mean = raw.iter().sum::<f32>() / 7.0;
    raw.iter().map(|w| w / mean).collect()
}

/// Cosine decay from `learning_rate` to `min_learning_rate` over the whole run.
fn learning_rate_at(config: &TrainConfig, progress: f64) -> f64 {
    let cosine = 0.5 * (1.0 + (std::f64::consts::PI * progress.clamp(0.0, 1.0)).cos());
    config.min_learning_rate + (config.learning_rate - config.min_learning_rate) * cosine
}

fn train_epoch(
    config: &TrainConfig,
    mut model: Net,
    optimizer: &mut burn::optim::ModuleOptimizer,
    loss_fn: &CrossEntropyLoss,
    train: &Faces,
    epoch: usize,
    device: &Device,
) -> (Net, f64, f64, f64) {
    // A per-epoch RNG derived from the seed: a resumed run draws what it would have drawn.
    let mut rng = rand::rngs::StdRng::seed_from_u64(
        config.seed ^ (epoch as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15),
    );
    let mut order: Vec<usize> = (0..train.len()).collect();
    order.shuffle(&mut rng);
    let batches: Vec<&[usize]> = order.chunks(config.batch_size).collect();
    let progress = progress_bar(batches.len(), epoch, config.epochs);
    let (mut loss_sum, mut correct, mut seen) = (0.0, 0usize, 0usize);
    let mut learning_rate = config.learning_rate;
    let mut scratch = GrayImage::new(FACE_SIDE as u32, FACE_SIDE as u32);
    for (step, batch) in batches.iter().enumerate() {
        let progress_fraction =
            ((epoch - 1) as f64 + step as f64 / batches.len() as f64) / config.epochs as f64;
        learning_rate = learning_rate_at(config, progress_fraction);
        let inputs = batch_input(
            train,
            batch,
            config.augment.as_ref(),
            &mut rng,
            &mut scratch,
        );
        let targets = batch_targets(train, batch);
        let images = Tensor::<4>::from_data(
            TensorData::new(inputs, [batch.len(), 1, FACE_SIDE, FACE_SIDE]),
            device,
        );
        let labels =
            Tensor::<1, Int>::from_data(TensorData::new(targets.clone(), [batch.len()]), device);
        let logits = model.forward(images);
        let loss = loss_fn.forward(logits.clone(), labels);
        let predicted = logits
            .argmax(1)
            .into_data()
            .convert::<i64>()
            .try_to_vec::<i64>()
            .unwrap_or_default();
        correct += predicted
            .iter()
            .zip(&targets)
            .filter(|(p, t)| p == t)
            .count();
        seen += batch.len();
        loss_sum += f64::from(loss.clone().into_scalar::<f32>()) * batch.len() as f64;
        let gradients = GradientsParams::from_grads(loss.backward(), &model);
        model = optimizer.step(learning_rate, model, gradients);
        progress.inc(1);
        progress.set_message(format!(
            "loss {:.3} acc {:.3}",
            loss_sum / seen as f64,
            correct as f64 / seen as f64
        ));
    }
    progress.finish();
    (
        model,
        loss_sum / seen.max(1) as f64,
        correct as f64 / seen.max(1) as f64,
        learning_rate,
    )
}

fn progress_bar(len: usize, epoch: usize, epochs: usize) -> ProgressBar {
    let bar = ProgressBar::new(len as u64);
    if let Ok(style) =
        ProgressStyle::with_template("epoch {prefix} [{bar:30}] {pos}/{len} {elapsed}<{eta} {msg}")
    {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.set_prefix(format!("{epoch}/{epochs}"));
    bar
}

/// The batch's faces as model input, augmented when `augment` is set.
fn batch_input(
    faces: &Faces,
    batch: &[usize],
    augment: Option<&AugmentConfig>,
    rng: &mut impl rand::Rng,
    scratch: &mut GrayImage,
) -> Vec<f32> {
    let mut input = vec![0.0f32; batch.len() * FACE_LEN];
    for (slot, &index) in input.chunks_exact_mut(FACE_LEN).zip(batch) {
        let face = match augment {
            Some(config) => {
                augment::apply(faces.face(index), &Transform::random(config, rng), scratch);
                scratch.as_raw().as_slice()
            }
            None => faces.face(index),
        };
        let grey = GreyImage::new(FACE_SIDE, FACE_SIDE, face).expect("faces are 48×48");
        prepare_face_into(grey, slot);
    }
    input
}

fn batch_targets(faces: &Faces, batch: &[usize]) -> Vec<i64> {
    batch.iter().map(|&i| faces.label(i) as i64).collect()
}

/// (mean cross-entropy, accuracy) of `model` on `faces`, without augmentation.
pub fn evaluate(model: &Net, faces: &Faces) -> (f64, f64) {
    let probabilities = predict(model, faces);
    let loss: f64 = probabilities
        .chunks_exact(NUM_CLASSES)
        .enumerate()
        .map(|(i, row)| -f64::from(row[faces.label(i)].max(1e-7)).ln())
        .sum();
    (
        loss / faces.len().max(1) as f64,
        accuracy(&probabilities, faces),
    )
}

/// Share of `faces` whose most probable class (rows of `probabilities`, `len×7`) is their label.
pub fn accuracy(probabilities: &[f32], faces: &Faces) -> f64 {
    let hits = probabilities
        .chunks_exact(NUM_CLASSES)
        .enumerate()
        .filter(|(i, row)| crate::metrics::argmax(row) == faces.label(*i))
        .count();
    hits as f64 / faces.len().max(1) as f64
}

/// Softmax probabilities `len×7` of the burn model (inference mode) on `faces`.
pub fn predict(model: &Net, faces: &Faces) -> Vec<f32> {
    let model = model.valid();
    // Inputs go where the weights are (a libtorch-trained net validates on libtorch).
    let device = model
        .devices()
        .into_iter()
        .next()
        .unwrap_or_else(Device::flex);
    let all: Vec<usize> = (0..faces.len()).collect();
    let mut scratch = GrayImage::new(FACE_SIDE as u32, FACE_SIDE as u32);
    let mut rng = rand::rngs::StdRng::seed_from_u64(0);
    let mut out = Vec::with_capacity(faces.len() * 7);
    for batch in all.chunks(256) {
        let input = batch_input(faces, batch, None, &mut rng, &mut scratch);
        let images = Tensor::<4>::from_data(
            TensorData::new(input, [batch.len(), 1, FACE_SIDE, FACE_SIDE]),
            &device,
        );
        let probabilities = burn::tensor::activation::softmax(model.forward(images), 1);
        out.extend(
            probabilities
                .into_data()
                .convert::<f32>()
                .try_to_vec::<f32>()
                .unwrap_or_default(),
        );
    }
    out
}

fn save_model(model: &Net, path: &Path) -> Result<()> {
    let temporary = path.with_extension("bpk.tmp");
    let mut store = BurnpackStore::from_file(&temporary)
        .overwrite(true)
        .auto_extension(false);
    model
        .save_into(&mut store)
        .map_err(|e| anyhow::anyhow!("cannot save model to {}: {e}", temporary.display()))?;
    std::fs::rename(&temporary, path)
        .with_context(|| format!("cannot rename to {}", path.display()))
}

/// Loads weights saved by training into a fresh network of `arch` (inference device).
pub fn load_model(arch: &Arch, path: &Path) -> Result<Net> {
    let mut model = Net::new(arch, &Device::flex());
    load_weights(&mut model, path)?;
    Ok(model)
}

fn load_weights(model: &mut Net, path: &Path) -> Result<()> {
    if !path.exists() {
        bail!("no model at {}", path.display());
    }
    let mut store = BurnpackStore::from_file(path).auto_extension(false);
    model
        .load_from(&mut store)
        .map_err(|e| anyhow::anyhow!("cannot load model {}: {e}", path.display()))?;
    Ok(())
}

/// Writes the checkpoint into a fresh folder, then swaps it in with renames, so an
/// interruption leaves either the old or the new checkpoint, never half of one.
fn save_checkpoint(
    run: &RunDir,
    model: &Net,
    optimizer: &burn::optim::ModuleOptimizer,
    state: &RunState,
    log: &[EpochLog],
) -> Result<()> {
    let next = run.0.join("checkpoint.next");
    let old = run.0.join("checkpoint.old");
    let _ = std::fs::remove_dir_all(&next);
    std::fs::create_dir_all(&next)?;
    save_model(model, &next.join("model.bpk"))?;
    optimizer
        .save(next.join("optimizer.bin"))
        .map_err(|e| anyhow::anyhow!("cannot save optimizer state: {e}"))?;
    write_atomically(
        &next.join("state.json"),
        serde_json::to_string_pretty(state)?.as_bytes(),
    )?;
    let lines: String = log
        .iter()
        .map(|e| serde_json::to_string(e).map(|l| l + "\n"))
        .collect::<Result<_, _>>()?;
    write_atomically(&run.log(), lines.as_bytes())?;
    let _ = std::fs::remove_dir_all(&old);
    if run.checkpoint().exists() {
        std::fs::rename(run.checkpoint(), &old)?;
    }
    std::fs::rename(&next, run.checkpoint())?;
    let _ = std::fs::remove_dir_all(&old);
    if let Err(error) = chart::training_chart(log, &run.chart()) {
        tracing::warn!(%error, "could not draw the training chart");
    }
    Ok(())
}

fn load_checkpoint(dir: &Path, model: &mut Net) -> Result<RunState> {
    let state_path = dir.join("state.json");
    let state: RunState = serde_json::from_str(&std::fs::read_to_string(&state_path)?)
        .with_context(|| format!("{} is corrupt", state_path.display()))?;
    load_weights(model, &dir.join("model.bpk"))?;
    Ok(state)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn class_weights_favour_rare_classes_and_average_one() {
        let weights = inverse_frequency_weights(&[3995, 436, 4097, 7215, 4830, 3171, 4965]);
        let mean: f32 = weights.iter().sum::<f32>() / 7.0;
        assert!((mean - 1.0).abs() < 1e-5);
        assert!(weights[1] > weights[0] && weights[0] > weights[3]);
    }

    #[test]
    fn cosine_schedule_runs_from_max_to_min() {
        let config = TrainConfig {
            epochs: 10,
            ..TrainConfig::paper(Arch::lenet5())
        };
        assert!((learning_rate_at(&config, 0.0) - 1e-3).abs() < 1e-12);
        assert!((learning_rate_at(&config, 1.0) - 1e-5).abs() < 1e-12);
        assert!((learning_rate_at(&config, 0.5) - 5.05e-4).abs() < 1e-9);
    }

    #[test]
    fn configs_saved_before_split_read_as_the_default_split() {
        let mut json = serde_json::to_value(TrainConfig::paper(Arch::lenet5())).unwrap();
        json.as_object_mut().unwrap().remove("split");
        let config: TrainConfig = serde_json::from_value(json).unwrap();
        assert_eq!(config.split, SplitConfig::default());
        assert_eq!(config.arch, Arch::lenet5());
    }
}
