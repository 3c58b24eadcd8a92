//! The recipe of a training run — architecture, schedule, regularisation, augmentation,
//! seed and validation split — saved as the run's `config.json`.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::augment::AugmentConfig;
use crate::data::Faces;
use crate::nets::Arch;

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
    /// The run whose best weights this run started from (fine-tuning), if any.
    #[serde(default)]
    pub init_from: Option<PathBuf>,
    /// Adam (the paper's, and every run before session 16) or SGD with Nesterov momentum.
    #[serde(default)]
    pub optimizer: OptimizerKind,
    /// How the learning rate moves: one cosine over the run, or cut on a validation plateau.
    #[serde(default)]
    pub schedule: Schedule,
    /// Learn from teachers' softened probabilities as well as the labels (none: labels only).
    #[serde(default)]
    pub distill: Option<crate::distill::Distill>,
    /// Mixup's α (none: no mixup; runs saved before it: none).
    #[serde(default)]
    pub mixup: Option<f32>,
}

/// The optimiser of a run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum OptimizerKind {
    #[default]
    Adam,
    /// SGD with Nesterov momentum (Khaireddin & Chen 2021: 1.2–1.7 points over Adam on
    /// FER-2013 with their VGG).
    SgdNesterov { momentum: f64 },
}

/// The learning-rate schedule of a run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Schedule {
    /// Cosine from `learning_rate` to `min_learning_rate` over the run's epochs.
    #[default]
    Cosine,
    /// `learning_rate` times `factor` each time validation accuracy has not improved for
    /// `patience` epochs, never under `min_learning_rate` (reduce-on-plateau).
    Plateau { factor: f64, patience: usize },
}

impl Schedule {
    /// Khaireddin & Chen's: ×0.75 after 5 epochs without a better validation accuracy.
    pub const PLATEAU: Schedule = Schedule::Plateau {
        factor: 0.75,
        patience: 5,
    };
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
            init_from: None,
            optimizer: OptimizerKind::Adam,
            schedule: Schedule::Cosine,
            distill: None,
            mixup: None,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn configs_saved_before_split_read_as_the_default_split() {
        let mut json = serde_json::to_value(TrainConfig::paper(Arch::lenet5())).unwrap();
        json.as_object_mut().unwrap().remove("split");
        let config: TrainConfig = serde_json::from_value(json).unwrap();
        assert_eq!(config.split, SplitConfig::default());
        assert_eq!(config.arch, Arch::lenet5());
    }

    #[test]
    fn configs_saved_before_the_optimizer_and_schedule_read_as_adam_and_cosine() {
        let mut json = serde_json::to_value(TrainConfig::paper(Arch::lenet5())).unwrap();
        let object = json.as_object_mut().unwrap();
        object.remove("optimizer");
        object.remove("schedule");
        let config: TrainConfig = serde_json::from_value(json).unwrap();
        assert_eq!(config.optimizer, OptimizerKind::Adam);
        assert_eq!(config.schedule, Schedule::Cosine);
        let sgd = TrainConfig {
            optimizer: OptimizerKind::SgdNesterov { momentum: 0.9 },
            schedule: Schedule::PLATEAU,
            ..TrainConfig::paper(Arch::lenet5())
        };
        let text = serde_json::to_string(&sgd).unwrap();
        assert!(
            text.contains(r#""optimizer":{"sgd-nesterov":{"momentum":0.9}}"#),
            "{text}"
        );
        let back: TrainConfig = serde_json::from_str(&text).unwrap();
        assert_eq!(back.schedule, Schedule::PLATEAU);
    }
}
