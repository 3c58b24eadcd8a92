//! Bias-corrected temperature scaling (BCTS; Alexandari, Kundaje & Shrikumar 2020): the
//! model's seven probabilities made honest on faces it never trained on, so that the lesson
//! estimate's prior re-weighting ([`super::em`]) can trust them. The calibrated logits are
//! `a · ln p + b` (one slope `a`, an inverse temperature, and one bias per expression),
//! fitted by maximum likelihood on the calibration faces.
//!
//! Why our own fit: it is eight parameters on a convex negative log-likelihood, a few dozen
//! lines of gradient descent; linfa's multinomial logistic regression fits a full 7×7
//! weight matrix (matrix scaling), which over-fits a few thousand faces, and cannot tie the
//! seven slopes together.

use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};

/// Fits on resampled calibration faces kept beside the main one (the interval's share of
/// the calibration's own uncertainty; 20 covered 86–91 % in `em_estimate`).
pub const RESAMPLED_FITS: usize = 20;
/// Most resampled fits a calibration may carry.
const MAX_RESAMPLED_FITS: usize = 100;
/// Smallest probability taken into a logarithm (a model's softmax may round to 0).
const FLOOR: f64 = 1e-7;
/// Gradient steps of a fit (the loss is flat to 1e-9 well before).
const STEPS: usize = 400;

/// One BCTS fit: `softmax(slope · ln p + biases)`, calibrated under `prior`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScalingFit {
    /// `a`, multiplying the log of each model probability (1: the model's own confidence).
    pub slope: f64,
    /// `b`, one per expression in label order.
    pub biases: [f64; 7],
    /// The expressions' shares among the faces it was fitted on: the mix its probabilities
    /// are calibrated for, from which a lesson's mix is re-weighted.
    pub prior: [f64; 7],
}

/// A model's probability calibration, stored in `models.json` beside its confusions.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProbabilityCalibration {
    /// Calibration faces the fits saw.
    pub faces: u64,
    /// The fit on all of them: the estimate's.
    pub fit: ScalingFit,
    /// Fits on resampled calibration faces: the interval's.
    pub resampled: Vec<ScalingFit>,
}

/// Why a probability calibration is refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ScalingError {
    #[error("a scaling slope must be finite and in 0.01..=100, got {0}")]
    Slope(f64),
    #[error("a scaling bias must be finite and within ±50")]
    Bias,
    #[error("a scaling prior must be seven finite shares above 0 summing to 1")]
    Prior,
    #[error(
        "a probability calibration may carry at most {MAX_RESAMPLED_FITS} resampled fits, got {0}"
    )]
    TooManyFits(usize),
    #[error("a face's label must be below 7 and its probabilities finite and non-negative")]
    Face,
}

/// A face as a fit sees it: its true expression label and the model's seven probabilities.
pub type LabelledFace = (usize, [f64; 7]);

impl ScalingFit {
    /// The calibrated probabilities of a face the model gave `p`.
    pub fn apply(&self, p: &[f64; 7]) -> [f64; 7] {
        self.apply_to_logs(&log_probabilities(p))
    }

    /// The same from [`log_probabilities`] of `p` (a lesson's refresh takes the logarithms
    /// once for all its fits).
    pub fn apply_to_logs(&self, logs: &[f64; 7]) -> [f64; 7] {
        softmax(&std::array::from_fn(|k| {
            self.slope * logs[k] + self.biases[k]
        }))
    }

    /// The maximum-likelihood fit on `faces` (at least one; labels below 7).
    pub fn fit(faces: &[LabelledFace]) -> Result<ScalingFit, ScalingError> {
        let valid =
            |(label, p): &LabelledFace| *label < 7 && p.iter().all(|v| v.is_finite() && *v >= 0.0);
        if faces.is_empty() || !faces.iter().all(valid) {
            return Err(ScalingError::Face);
        }
        let mut prior = [0.0; 7];
        for (label, _) in faces {
            prior[*label] += 1.0 / faces.len() as f64;
        }
        let mut fit = ScalingFit {
            slope: 1.0,
            biases: [0.0; 7],
            prior,
        };
        let mut step = 1.0;
        let (mut loss, mut gradient) = fit.loss_and_gradient(faces);
        for _ in 0..STEPS {
            // Backtracking: shrink the step until the loss falls, then try a longer one.
            loop {
                let trial = ScalingFit {
                    slope: fit.slope - step * gradient.0,
                    biases: std::array::from_fn(|k| fit.biases[k] - step * gradient.1[k]),
                    prior,
                };
                let (trial_loss, trial_gradient) = trial.loss_and_gradient(faces);
                if trial_loss < loss {
                    (fit, loss, gradient) = (trial, trial_loss, trial_gradient);
                    step *= 1.5;
                    break;
                }
                step /= 2.0;
                if step < 1e-12 {
                    return Ok(fit);
                }
            }
        }
        Ok(fit)
    }

    /// Mean negative log-likelihood on `faces` and its gradient in the slope and biases.
    fn loss_and_gradient(&self, faces: &[LabelledFace]) -> (f64, (f64, [f64; 7])) {
        let (mut loss, mut slope, mut biases) = (0.0, 0.0, [0.0; 7]);
        for (label, p) in faces {
            let q = self.apply(p);
            loss -= q[*label].max(f64::MIN_POSITIVE).ln();
            for k in 0..7 {
                let residual = q[k] - f64::from(u8::from(k == *label));
                slope += residual * p[k].max(FLOOR).ln();
                biases[k] += residual;
            }
        }
        let n = faces.len() as f64;
        (loss / n, (slope / n, biases.map(|g| g / n)))
    }

    fn check(&self) -> Result<(), ScalingError> {
        if !(self.slope.is_finite() && (0.01..=100.0).contains(&self.slope)) {
            return Err(ScalingError::Slope(self.slope));
        }
        if !self.biases.iter().all(|b| b.is_finite() && b.abs() <= 50.0) {
            return Err(ScalingError::Bias);
        }
        let sum: f64 = self.prior.iter().sum();
        if !(self.prior.iter().all(|s| s.is_finite() && *s > 0.0) && (sum - 1.0).abs() < 1e-6) {
            return Err(ScalingError::Prior);
        }
        Ok(())
    }
}

impl ProbabilityCalibration {
    /// The fit on `faces` and [`RESAMPLED_FITS`] fits on resamples of them (seeded, so a
    /// calibration is reproducible).
    pub fn fit(faces: &[LabelledFace], seed: u64) -> Result<Self, ScalingError> {
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        let resampled = (0..RESAMPLED_FITS)
            .map(|_| {
                let resample: Vec<LabelledFace> = (0..faces.len())
                    .map(|_| faces[rng.random_range(0..faces.len())])
                    .collect();
                ScalingFit::fit(&resample)
            })
            .collect::<Result<_, _>>()?;
        Ok(Self {
            faces: faces.len() as u64,
            fit: ScalingFit::fit(faces)?,
            resampled,
        })
    }

    /// Refuses what could not calibrate: absurd slopes or biases, a prior that is not a
    /// mix with every expression in it, too many fits.
    pub fn check(&self) -> Result<(), ScalingError> {
        if self.resampled.len() > MAX_RESAMPLED_FITS {
            return Err(ScalingError::TooManyFits(self.resampled.len()));
        }
        self.fit.check()?;
        self.resampled.iter().try_for_each(ScalingFit::check)
    }
}

/// The logarithms a fit scales, each probability floored at 1e-7 first.
pub fn log_probabilities(p: &[f64; 7]) -> [f64; 7] {
    p.map(|v| v.max(FLOOR).ln())
}

pub(super) fn softmax(logits: &[f64; 7]) -> [f64; 7] {
    let max = logits.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let e = logits.map(|z| (z - max).exp());
    let per_total = 1.0 / e.iter().sum::<f64>();
    e.map(|v| v * per_total)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Faces whose true label is drawn from a model's sharpened probabilities: a model
    /// over-confident by a known temperature, which the fit must undo.
    fn overconfident_faces(n: usize, true_slope: f64) -> Vec<LabelledFace> {
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        (0..n)
            .map(|_| {
                let logits: [f64; 7] = std::array::from_fn(|_| rng.random_range(-2.0..2.0));
                let honest = softmax(&logits);
                // The model reports logits 1/true_slope times too large.
                let reported = softmax(&logits.map(|z| z / true_slope));
                let u: f64 = rng.random();
                let mut cumulative = 0.0;
                let label = (0..7)
                    .find(|&k| {
                        cumulative += honest[k];
                        u < cumulative
                    })
                    .unwrap_or(6);
                (label, reported)
            })
            .collect()
    }

    #[test]
    fn the_fit_recovers_a_known_overconfidence() {
        let faces = overconfident_faces(20_000, 0.5);
        let fit = ScalingFit::fit(&faces).unwrap();
        assert!((fit.slope - 0.5).abs() < 0.05, "{fit:?}");
        let total: f64 = fit.prior.iter().sum();
        assert!((total - 1.0).abs() < 1e-9);
        fit.check().unwrap();
        // Calibrated probabilities fit the labels better than the model's own.
        let identity = ScalingFit {
            slope: 1.0,
            biases: [0.0; 7],
            prior: fit.prior,
        };
        assert!(fit.loss_and_gradient(&faces).0 < identity.loss_and_gradient(&faces).0);
    }

    #[test]
    fn hostile_faces_and_fits_are_refused() {
        assert_eq!(ScalingFit::fit(&[]), Err(ScalingError::Face));
        assert_eq!(ScalingFit::fit(&[(7, [0.1; 7])]), Err(ScalingError::Face));
        assert_eq!(
            ScalingFit::fit(&[(0, [f64::NAN; 7])]),
            Err(ScalingError::Face)
        );
        let calibration = ProbabilityCalibration::fit(&overconfident_faces(500, 1.0), 3).unwrap();
        assert_eq!(calibration.resampled.len(), RESAMPLED_FITS);
        calibration.check().unwrap();
        let mut broken = calibration.clone();
        broken.fit.slope = f64::INFINITY;
        assert!(matches!(broken.check(), Err(ScalingError::Slope(_))));
        let mut broken = calibration.clone();
        broken.resampled[3].prior = [0.0, 0.2, 0.2, 0.2, 0.2, 0.1, 0.1];
        assert_eq!(broken.check(), Err(ScalingError::Prior));
        let mut broken = calibration;
        broken.resampled = vec![broken.fit.clone(); 101];
        assert_eq!(broken.check(), Err(ScalingError::TooManyFits(101)));
    }
}
