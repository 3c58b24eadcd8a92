//! The training loop (burn with autodiff, on a [`Backend`] chosen at run time): Adam with a
//! cosine learning-rate decay, shuffled and augmented batches, per-epoch validation, best
//! epoch kept by validation accuracy, optional early stop, and a checkpoint every epoch
//! ([`crate::run`]) so a run resumes where it stopped (`--resume`). The recipe is
//! [`crate::recipe`]; running a net on faces is [`crate::predict`].

use std::time::Instant;

use anyhow::{bail, Context, Result};
use burn::module::Module;
use burn::nn::loss::{CrossEntropyLoss, CrossEntropyLossConfig};
use burn::optim::momentum::MomentumConfig;
use burn::optim::{AdamConfig, GradientsParams, SgdConfig};
use burn::tensor::{Device, Int, Tensor, TensorData};
use ekspresi_common::contract::NUM_CLASSES;
use ekspresi_common::FACE_SIDE;
use image::GrayImage;
use indicatif::{ProgressBar, ProgressStyle};
use rand::seq::SliceRandom;
use rand::SeedableRng;

use crate::backend::Backend;
use crate::chart;
use crate::data::Faces;
use crate::fsutil::write_atomically;
use crate::mixup::Blend;
use crate::nets::Net;
use crate::predict::{batch_input, evaluate};
use crate::recipe::{OptimizerKind, Schedule, TrainConfig};
use crate::run::{
    load_checkpoint, load_weights, save_checkpoint, save_model, EpochLog, RunDir, RunState,
};

/// A fresh start never writes over a run's work: its log, checkpoint and best weights
/// would be lost to a forgotten `--resume`.
fn refuse_to_overwrite(run: &RunDir) -> Result<()> {
    let epochs_logged = run.load_log().map_or(0, |log| log.len());
    if epochs_logged > 0 || run.checkpoint().exists() || run.best_model().exists() {
        bail!(
            "{} already holds a run ({epochs_logged} epochs logged): pass --resume to continue \
             it, or choose another --run",
            run.0.display()
        );
    }
    Ok(())
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
        // Another optimiser cannot take the saved optimiser state; another schedule would
        // make the run's rates a mix of two recipes.
        if saved.optimizer != config.optimizer
            || saved.schedule != config.schedule
            || saved.distill != config.distill
            || saved.mixup != config.mixup
        {
            bail!(
                "--resume: {} was trained with {:?}, {:?}, {:?} and mixup {:?}: pass the same \
                 --optimizer, --schedule, --teacher and --mixup options",
                run.0.display(),
                saved.optimizer,
                saved.schedule,
                saved.distill,
                saved.mixup
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
        refuse_to_overwrite(run)?;
        if let Some(source) = &config.init_from {
            init_from(config, &RunDir::new(source), &mut model)?;
        }
        write_atomically(
            &run.config(),
            serde_json::to_string_pretty(config)?.as_bytes(),
        )?;
        write_atomically(&run.log(), b"")?;
    }

    let loss_fn = loss_function(config, train, &device);
    let teacher_targets = match &config.distill {
        Some(distill) => Some(crate::distill::teacher_targets(
            distill,
            config,
            train,
            &backend.device(),
        )?),
        None => None,
    };
    let mut since_best = state.epochs_done - state.best_epoch.min(state.epochs_done);
    for epoch in state.epochs_done + 1..=config.epochs {
        let started = Instant::now();
        let epoch_rate = match config.schedule {
            Schedule::Cosine => None,
            Schedule::Plateau { factor, patience } => {
                Some(plateau_rate(config, &log, factor, patience))
            }
        };
        let (trained, train_loss, train_accuracy, learning_rate) = train_epoch(
            config,
            model,
            &mut optimizer,
            (&loss_fn, teacher_targets.as_deref()),
            train,
            (epoch, epoch_rate),
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
        if let Err(error) = chart::training_chart(&log, &run.chart()) {
            tracing::warn!(%error, "could not draw the training chart");
        }
        if config.patience.is_some_and(|p| since_best >= p) {
            tracing::info!(epoch, best_epoch = state.best_epoch, "early stop");
            break;
        }
    }
    Ok(log)
}

/// Loads `source`'s best weights into `model`, after checking that they fit it and that
/// `source` held out the same validation faces (else this run would validate on faces its
/// starting weights were trained on).
fn init_from(config: &TrainConfig, source: &RunDir, model: &mut Net) -> Result<()> {
    let saved = source.load_config()?;
    let same_layers = saved.arch.convs == config.arch.convs
        && saved.arch.dense == config.arch.dense
        && saved.arch.batch_norm == config.arch.batch_norm;
    if !same_layers {
        bail!(
            "--init-from: {} has other layers than --arch {}",
            source.0.display(),
            config.arch.name
        );
    }
    if saved.split != config.split || saved.seed != config.seed {
        bail!(
            "--init-from: {} was trained on another split or seed",
            source.0.display()
        );
    }
    load_weights(model, &source.best_model())?;
    tracing::info!(from = %source.0.display(), "starting from its best weights");
    Ok(())
}

fn optimizer(config: &TrainConfig) -> burn::optim::ModuleOptimizer {
    let decay = config
        .weight_decay
        .map(burn::optim::decay::WeightDecayConfig::new);
    match config.optimizer {
        OptimizerKind::Adam => AdamConfig::new().with_weight_decay(decay).init(),
        OptimizerKind::SgdNesterov { momentum } => SgdConfig::new()
            .with_weight_decay(decay)
            .with_momentum(Some(
                MomentumConfig::new()
                    .with_momentum(momentum)
                    .with_dampening(0.0)
                    .with_nesterov(true),
            ))
            .init(),
    }
}

/// The learning rate of the epoch after `log` under a plateau schedule: the start rate,
/// times `factor` for every `patience` epochs in a row without a new best validation
/// accuracy, never under the minimum. A function of the log alone, so a resumed run picks
/// up the rate it had.
fn plateau_rate(config: &TrainConfig, log: &[EpochLog], factor: f64, patience: usize) -> f64 {
    let mut rate = config.learning_rate;
    let (mut best, mut since) = (f64::NEG_INFINITY, 0);
    for entry in log {
        if entry.validation_accuracy > best {
            best = entry.validation_accuracy;
            since = 0;
        } else {
            since += 1;
            if since >= patience.max(1) {
                rate = (rate * factor).max(config.min_learning_rate);
                since = 0;
            }
        }
    }
    rate
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
    (loss_fn, teacher_targets): (&CrossEntropyLoss, Option<&[f32]>),
    train: &Faces,
    (epoch, epoch_rate): (usize, Option<f64>),
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
        learning_rate = epoch_rate.unwrap_or_else(|| learning_rate_at(config, progress_fraction));
        let mut inputs = batch_input(
            train,
            batch,
            config.augment.as_ref(),
            config.arch.crop_margin(),
            &mut rng,
            &mut scratch,
        );
        let targets = batch_targets(train, batch);
        let blend = config
            .mixup
            .map(|alpha| Blend::draw(alpha, batch.len(), &mut rng));
        if let Some(blend) = &blend {
            blend.rows(&mut inputs, FACE_SIDE * FACE_SIDE);
        }
        let images = Tensor::<4>::from_data(
            TensorData::new(inputs, [batch.len(), 1, FACE_SIDE, FACE_SIDE]),
            device,
        );
        let labels_of = |targets: Vec<i64>| {
            Tensor::<1, Int>::from_data(TensorData::new(targets, [batch.len()]), device)
        };
        let logits = model.forward(images);
        let mut loss = loss_fn.forward(logits.clone(), labels_of(targets.clone()));
        if let Some(blend) = &blend {
            let partners = labels_of(blend.partner_labels(&targets));
            loss = loss * blend.lambda
                + loss_fn.forward(logits.clone(), partners) * (1.0 - blend.lambda);
        }
        if let (Some(distill), Some(targets)) = (&config.distill, teacher_targets) {
            let mut batch_targets: Vec<f32> = batch
                .iter()
                .flat_map(|&i| {
                    targets[i * NUM_CLASSES..(i + 1) * NUM_CLASSES]
                        .iter()
                        .copied()
                })
                .collect();
            if let Some(blend) = &blend {
                blend.rows(&mut batch_targets, NUM_CLASSES);
            }
            let taught = crate::distill::distillation_loss(
                logits.clone(),
                &batch_targets,
                distill.temperature,
                device,
            );
            loss = taught * distill.weight + loss * (1.0 - distill.weight);
        }
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

fn batch_targets(faces: &Faces, batch: &[usize]) -> Vec<i64> {
    batch.iter().map(|&i| faces.label(i) as i64).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nets::Arch;

    #[test]
    fn class_weights_favour_rare_classes_and_average_one() {
        let weights = inverse_frequency_weights(&[3995, 436, 4097, 7215, 4830, 3171, 4965]);
        let mean: f32 = weights.iter().sum::<f32>() / 7.0;
        assert!((mean - 1.0).abs() < 1e-5);
        assert!(weights[1] > weights[0] && weights[0] > weights[3]);
    }

    #[test]
    fn plateau_rate_cuts_after_patience_epochs_without_a_better_validation() {
        let config = TrainConfig {
            learning_rate: 0.01,
            min_learning_rate: 0.004,
            ..TrainConfig::paper(Arch::lenet5())
        };
        let log = |accuracies: &[f64]| -> Vec<EpochLog> {
            accuracies
                .iter()
                .enumerate()
                .map(|(i, &validation_accuracy)| EpochLog {
                    epoch: i + 1,
                    train_loss: 1.0,
                    train_accuracy: 0.5,
                    validation_loss: 1.0,
                    validation_accuracy,
                    learning_rate: 0.0,
                    seconds: 1.0,
                })
                .collect()
        };
        let rate = |accuracies: &[f64]| plateau_rate(&config, &log(accuracies), 0.75, 2);
        assert_eq!(rate(&[]), 0.01);
        assert_eq!(rate(&[0.3, 0.4, 0.5]), 0.01, "improving: no cut");
        assert_eq!(rate(&[0.5, 0.4]), 0.01, "one epoch without: no cut yet");
        assert!(
            (rate(&[0.5, 0.4, 0.5]) - 0.0075).abs() < 1e-12,
            "a tie is no improvement"
        );
        assert!((rate(&[0.5, 0.4, 0.4, 0.6, 0.5]) - 0.0075).abs() < 1e-12);
        // Cut after cut, floored at the minimum.
        assert_eq!(rate(&[0.5, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1]), 0.004);
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
}
