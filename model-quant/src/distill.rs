//! Knowledge distillation (Hinton, Vinyals & Dean 2015): a small student learns from the
//! averaged, softened probabilities of stronger teachers as well as from the labels.
//!
//! The teachers are earlier runs (their best weights). Their probabilities are computed once,
//! on the un-augmented training faces, before the first epoch: a teacher's forward pass per
//! batch would cost the VGG's time every step, and the student's augmentation (a few pixels
//! of shift, a few degrees, a mirror) does not change what a face shows. Each teacher must
//! have held out the same validation faces as the student (same split and seed), or the
//! student would learn its validation faces' labels through them.
//!
//! Loss per batch: `weight · T² · KL(q_T ‖ softmax(z / T)) + (1 − weight) · CE(z, y)`, where
//! `q_T` is the mean over teachers of `softmax(log p / T)` (= `p^(1/T)`, renormalised).

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use burn::module::Module;
use burn::tensor::{Device, Tensor, TensorData};
use ekspresi_common::contract::NUM_CLASSES;
use serde::{Deserialize, Serialize};

use crate::data::Faces;
use crate::predict::predict;
use crate::recipe::TrainConfig;
use crate::run::{load_model, RunDir};

/// A run's distillation: from which teachers, how soft, how much.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Distill {
    /// Run folders of the teachers (their `best.bpk`).
    pub teachers: Vec<PathBuf>,
    /// Softening temperature `T` (> 0; 1 is the teachers' own probabilities).
    pub temperature: f32,
    /// Weight of the teachers' term against the labels' (0..=1).
    pub weight: f32,
}

impl Distill {
    /// Checks the numbers before anything is loaded.
    pub fn validate(&self) -> Result<()> {
        if self.teachers.is_empty() {
            bail!("--teacher: at least one teacher run");
        }
        if !(self.temperature.is_finite() && (0.1..=20.0).contains(&self.temperature)) {
            bail!("--distill-temperature must be in 0.1..=20");
        }
        if !(self.weight.is_finite() && (0.0..=1.0).contains(&self.weight)) {
            bail!("--distill-weight must be in 0..=1");
        }
        Ok(())
    }
}

/// The teachers' averaged softened probabilities for every face of `train` (`len × 7`, in
/// `train`'s order), each teacher run on `device`.
pub fn teacher_targets(
    distill: &Distill,
    student: &TrainConfig,
    train: &Faces,
    device: &Device,
) -> Result<Vec<f32>> {
    let mut sum = vec![0f32; train.len() * NUM_CLASSES];
    for teacher in &distill.teachers {
        let run = RunDir::new(teacher);
        let config = run
            .load_config()
            .with_context(|| format!("teacher {}", teacher.display()))?;
        if config.split != student.split || config.seed != student.seed {
            bail!(
                "teacher {} held out other validation faces (split or seed differ): the student \
                 would learn its validation labels through it",
                teacher.display()
            );
        }
        let model = load_model(&config.arch, &run.best_model())?.to_device(device);
        let probabilities = predict(&model, train);
        tracing::info!(teacher = %teacher.display(), "teacher probabilities computed");
        for (total, row) in sum
            .chunks_exact_mut(NUM_CLASSES)
            .zip(probabilities.chunks_exact(NUM_CLASSES))
        {
            for (t, q) in total.iter_mut().zip(soften(row, distill.temperature)) {
                *t += q;
            }
        }
    }
    let teachers = distill.teachers.len() as f32;
    Ok(sum.into_iter().map(|t| t / teachers).collect())
}

/// `softmax(log p / T)`: the probabilities `p` softened by temperature `T`.
pub fn soften(probabilities: &[f32], temperature: f32) -> [f32; NUM_CLASSES] {
    let mut out = [0f32; NUM_CLASSES];
    let logs: Vec<f32> = probabilities
        .iter()
        .map(|p| p.max(1e-12).ln() / temperature)
        .collect();
    let max = logs.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let mut total = 0.0;
    for (o, l) in out.iter_mut().zip(&logs) {
        *o = (l - max).exp();
        total += *o;
    }
    for o in &mut out {
        *o /= total;
    }
    out
}

/// `T² · KL(targets ‖ softmax(logits / T))`, averaged over the batch: the teachers' term of
/// the loss (`targets` are rows of [`teacher_targets`] for the batch's faces).
pub fn distillation_loss(
    logits: Tensor<2>,
    targets: &[f32],
    temperature: f32,
    device: &Device,
) -> Tensor<1> {
    let [batch, classes] = logits.dims();
    let targets =
        Tensor::<2>::from_data(TensorData::new(targets.to_vec(), [batch, classes]), device);
    let log_student = burn::tensor::activation::log_softmax(logits / temperature, 1);
    let log_targets = targets.clone().clamp_min(1e-12).log();
    let kl = (targets * (log_targets - log_student)).sum_dim(1).mean();
    kl * (temperature * temperature)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn softening_keeps_the_order_and_flattens() {
        let p = [0.7, 0.2, 0.05, 0.02, 0.01, 0.01, 0.01];
        let same = soften(&p, 1.0);
        for (a, b) in same.iter().zip(&p) {
            assert!((a - b).abs() < 1e-5);
        }
        let soft = soften(&p, 4.0);
        assert!((soft.iter().sum::<f32>() - 1.0).abs() < 1e-5);
        assert!(soft[0] > soft[1] && soft[1] > soft[2]);
        assert!(soft[0] < 0.7 && soft[6] > 0.01);
    }

    #[test]
    fn the_loss_is_zero_when_the_student_agrees_and_positive_otherwise() {
        let device = Device::flex();
        let logits = [2.0f32, 1.0, 0.0, -1.0, 0.5, 0.0, 0.0];
        let logits_tensor =
            || Tensor::<2>::from_data(TensorData::new(logits.to_vec(), [1, 7]), &device);
        let student = burn::tensor::activation::softmax(logits_tensor() / 2.0, 1)
            .into_data()
            .convert::<f32>()
            .try_to_vec::<f32>()
            .unwrap();
        let agree = distillation_loss(logits_tensor(), &student, 2.0, &device).into_scalar::<f32>();
        assert!(agree.abs() < 1e-5, "{agree}");
        let uniform = vec![1.0 / 7.0; 7];
        let differ =
            distillation_loss(logits_tensor(), &uniform, 2.0, &device).into_scalar::<f32>();
        assert!(differ > 0.01, "{differ}");
    }
}
