//! The lesson's mix from each second's calibrated probabilities: EM prior re-estimation
//! (Saerens, Latinne & Decaestecker 2002). Probabilities calibrated on faces of one mix
//! ([`ScalingFit::prior`]) are re-weighted to the lesson's mix until the mix they imply is
//! the mix they were weighted by. Unlike the adjusted count it uses the whole probability
//! vector of every second rather than its top class, which halved the share error's spread
//! on validation (`em_estimate`: 600 faces, vgg-lite 3.13 → 2.10 points).
//!
//! A second enters once, its faces' summed probabilities averaged (frames within a second
//! show the same face), weighted by its faces. Each second is calibrated once per estimate
//! (seven `exp`), and the 90 % interval is read off the same calibrated seconds by
//! linearising the fixed point ([`super::influence`]) — no replicates — so an estimate costs
//! one EM and one pass more; the bootstrap it replaced (40 replicates, every second
//! calibrated under 21 fits) made the class report 12× slower than counting.

use super::influence;
use super::scaling::{log_probabilities, ProbabilityCalibration, ScalingFit};

/// EM stops when no expression's share moves more than this: a ten-thousandth of a point,
/// far below the tenth of a point a share is shown to (1e-7 cost the class report 5 % more
/// time).
const TOLERANCE: f64 = 1e-6;
/// EM's most iterations (a poorly told-apart pair of expressions converges slowly; their
/// sum, which is all a category needs, converges fast).
const MAX_ITERATIONS: usize = 500;

/// One second with faces: how many, and the model's seven probabilities summed over them.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SecondProbabilities {
    pub faces: u64,
    pub summed: [f64; 7],
}

impl SecondProbabilities {
    fn mean(&self) -> [f64; 7] {
        let per_face = 1.0 / self.faces as f64;
        self.summed.map(|p| p * per_face)
    }
}

/// A lesson's seconds calibrated under one fit: what EM and its interval read.
pub(super) struct CalibratedSeconds {
    /// Faces in each second (its weight).
    pub weights: Vec<f64>,
    /// Each second's mean probabilities' logarithms (the fit's input).
    pub logs: Vec<[f64; 7]>,
    /// Each second's calibrated probabilities over the fit's prior: re-weighted to a mix
    /// `m`, a second's posterior is `relative ∘ m`, normalised.
    pub relative: Vec<[f64; 7]>,
    /// The weights' sum.
    pub total: f64,
}

impl CalibratedSeconds {
    pub(super) fn new(seconds: &[SecondProbabilities], fit: &ScalingFit) -> Self {
        let weights: Vec<f64> = seconds.iter().map(|s| s.faces as f64).collect();
        let logs: Vec<[f64; 7]> = seconds
            .iter()
            .map(|s| log_probabilities(&s.mean()))
            .collect();
        let over_prior = fit.prior.map(|p| 1.0 / p);
        let relative = logs
            .iter()
            .map(|l| {
                let q = fit.apply_to_logs(l);
                std::array::from_fn(|k| q[k] * over_prior[k])
            })
            .collect();
        let total = weights.iter().sum();
        Self {
            weights,
            logs,
            relative,
            total,
        }
    }

    /// The seconds of `parts` together, in order (each second calibrated once, with its
    /// part).
    pub(super) fn concatenated<'a>(parts: impl IntoIterator<Item = &'a CalibratedSeconds>) -> Self {
        let mut whole = Self {
            weights: Vec::new(),
            logs: Vec::new(),
            relative: Vec::new(),
            total: 0.0,
        };
        for part in parts {
            whole.weights.extend_from_slice(&part.weights);
            whole.logs.extend_from_slice(&part.logs);
            whole.relative.extend_from_slice(&part.relative);
            whole.total += part.total;
        }
        whole
    }
}

/// The category shares (positive, neutral, negative) of `seconds` (none with 0 faces) and,
/// from 2 seconds on, their standard errors (`None` too when the seconds cannot tell the
/// expressions apart: the fixed point is not unique, any share is as likely).
pub(super) fn shares(
    seconds: &[SecondProbabilities],
    calibration: &ProbabilityCalibration,
) -> ([f64; 3], Option<[f64; 3]>) {
    calibrated_shares(
        &CalibratedSeconds::new(seconds, &calibration.fit),
        calibration,
    )
}

/// The same from seconds already calibrated under `calibration.fit`.
pub(super) fn calibrated_shares(
    lesson: &CalibratedSeconds,
    calibration: &ProbabilityCalibration,
) -> ([f64; 3], Option<[f64; 3]>) {
    let point = mix(TOLERANCE, lesson, &calibration.fit.prior);
    let errors = (lesson.weights.len() >= 2)
        .then(|| influence::category_errors(lesson, &point, calibration))
        .flatten();
    (by_category(&point), errors)
}

/// The lesson's expression mix by EM from `start`: the seconds re-weighted until no share
/// moves more than `tolerance`.
///
/// Accelerated by SQUAREM (Varadhan & Roland 2008, scheme S3): two EM steps give a
/// direction and its curvature, and the mix jumps along it, then takes one EM step to land
/// back on the simplex (a jump leaving it falls back to the two plain steps). Plain EM
/// crawls where the seconds tell expressions apart poorly — a lesson of mixed, middling
/// faces took hundreds of steps — and every step is a pass over the lesson's seconds; the
/// fixed point is the same.
fn mix(tolerance: f64, lesson: &CalibratedSeconds, start: &[f64; 7]) -> [f64; 7] {
    let mut current = *start;
    if lesson.total <= 0.0 {
        return current;
    }
    let step = |from: &[f64; 7]| em_step(lesson, from);
    for _ in 0..MAX_ITERATIONS / 3 {
        let once = step(&current);
        let r: [f64; 7] = std::array::from_fn(|k| once[k] - current[k]);
        if r.iter().all(|d| d.abs() < tolerance) {
            return once;
        }
        let twice = step(&once);
        let v: [f64; 7] = std::array::from_fn(|k| twice[k] - once[k] - r[k]);
        let (rr, vv) = (squared(&r), squared(&v));
        let alpha = if vv > 0.0 {
            (-(rr / vv).sqrt()).min(-1.0)
        } else {
            -1.0
        };
        let jump: [f64; 7] =
            std::array::from_fn(|k| current[k] - 2.0 * alpha * r[k] + alpha * alpha * v[k]);
        current = if jump.iter().all(|p| p.is_finite() && *p >= 0.0) {
            step(&jump)
        } else {
            twice
        };
    }
    current
}

/// One EM step from the mix `from`: each second's posteriors re-weighted to it, averaged.
fn em_step(lesson: &CalibratedSeconds, from: &[f64; 7]) -> [f64; 7] {
    let mut next = [0.0; 7];
    for (a, &weight) in lesson.relative.iter().zip(&lesson.weights) {
        let weighted: [f64; 7] = std::array::from_fn(|k| a[k] * from[k]);
        let sum: f64 = weighted.iter().sum();
        if weight > 0.0 && sum > 0.0 {
            let scale = weight / sum;
            for k in 0..7 {
                next[k] += scale * weighted[k];
            }
        }
    }
    next.map(|v| v / lesson.total)
}

fn squared(v: &[f64; 7]) -> f64 {
    v.iter().map(|x| x * x).sum()
}

/// Positive, neutral and negative shares of an expression mix.
pub(super) fn by_category(mix: &[f64; 7]) -> [f64; 3] {
    let mut shares = [0.0; 3];
    for expression in crate::Expression::ALL {
        shares[expression.category().index()] += mix[expression.label()];
    }
    shares
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A model that is right 60 % of the time and spreads the rest evenly, honestly
    /// calibrated on a uniform mix.
    pub(crate) fn honest() -> ProbabilityCalibration {
        let fit = ScalingFit {
            slope: 1.0,
            biases: [0.0; 7],
            prior: [1.0 / 7.0; 7],
        };
        ProbabilityCalibration {
            faces: 1000,
            fit: fit.clone(),
            resampled: vec![fit; 3],
        }
    }

    pub(crate) fn second_of(label: usize) -> SecondProbabilities {
        let mut p = [0.4 / 6.0; 7];
        p[label] = 0.6;
        SecondProbabilities {
            faces: 2,
            summed: p.map(|v| 2.0 * v),
        }
    }

    /// Seconds as that model shows a lesson a quarter happy (label 3) and three quarters
    /// `other`: each second's posterior is its face's label's with probability 0.6, any other
    /// label's with 0.4/6, so of 60 seconds 12 look happy, 28 look `other` and 4 each of the
    /// five remaining expressions.
    pub(crate) fn quarter_happy(other: usize) -> Vec<usize> {
        let mut looks = vec![3; 12];
        looks.extend(std::iter::repeat_n(other, 28));
        for label in (0..7).filter(|&l| l != 3 && l != other) {
            looks.extend(std::iter::repeat_n(label, 4));
        }
        looks
    }

    #[test]
    fn em_undoes_the_pull_to_the_middle() {
        // The averaged probabilities alone would say 12/60 looked happy, 20 % not 25 %.
        let seconds: Vec<SecondProbabilities> =
            quarter_happy(4).into_iter().map(second_of).collect();
        let (shares, errors) = shares(&seconds, &honest());
        assert!((shares[0] - 0.25).abs() < 0.02, "{shares:?}");
        assert!((shares[2] - 0.75).abs() < 0.02, "{shares:?}");
        assert!((shares.iter().sum::<f64>() - 1.0).abs() < 1e-9);
        let errors = errors.unwrap();
        assert!(errors.iter().all(|e| *e > 0.0 && *e < 0.2), "{errors:?}");
        // The same seconds give the same interval (a recovered lesson's).
        assert_eq!(super::shares(&seconds, &honest()).1, Some(errors));
    }

    #[test]
    fn the_accelerated_em_reaches_plain_em_s_fixed_point() {
        // Mixed, middling seconds (every expression in every second): the flat case where
        // plain EM crawls.
        let prior = [0.1, 0.05, 0.15, 0.25, 0.15, 0.1, 0.2];
        let relative: Vec<[f64; 7]> = (0..300)
            .map(|s| {
                let mut p = [0.12; 7];
                p[s % 7] = 0.2;
                p[(s * 3 + 1) % 7] += 0.08;
                let total: f64 = p.iter().sum();
                std::array::from_fn(|k| p[k] / total / prior[k])
            })
            .collect();
        let lesson = CalibratedSeconds {
            weights: vec![1.0; relative.len()],
            logs: vec![[0.0; 7]; relative.len()],
            relative,
            total: 300.0,
        };
        let accelerated = mix(TOLERANCE, &lesson, &prior);
        let mut plain = prior;
        for _ in 0..200_000 {
            plain = em_step(&lesson, &plain);
        }
        for k in 0..7 {
            assert!(
                (accelerated[k] - plain[k]).abs() < 1e-5,
                "{accelerated:?} vs {plain:?}"
            );
        }
        assert!((accelerated.iter().sum::<f64>() - 1.0).abs() < 1e-9);
    }

    #[test]
    fn one_second_has_no_interval_and_zero_weights_are_ignored() {
        let (one, errors) = shares(&[second_of(6)], &honest());
        assert!(errors.is_none());
        assert!(one[1] > 0.9, "{one:?}");
        let lesson = CalibratedSeconds {
            weights: vec![0.0],
            logs: vec![[0.0; 7]],
            relative: vec![[1.0; 7]],
            total: 0.0,
        };
        assert_eq!(mix(TOLERANCE, &lesson, &[1.0 / 7.0; 7]), [1.0 / 7.0; 7]);
    }
}
