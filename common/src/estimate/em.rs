//! The lesson's mix from each second's calibrated probabilities: EM prior re-estimation
//! (Saerens, Latinne & Decaestecker 2002). Probabilities calibrated on faces of one mix
//! ([`ScalingFit::prior`]) are re-weighted to the lesson's mix until the mix they imply is
//! the mix they were weighted by. Unlike the adjusted count it uses the whole probability
//! vector of every second rather than its top class, which halved the share error's spread
//! on validation (`em_estimate`: 600 faces, vgg-lite 3.13 → 2.10 points).
//!
//! A second enters once, its faces' summed probabilities averaged (frames within a second
//! show the same face), weighted by its faces. The 90 % interval comes from a bootstrap
//! over seconds — seconds, not frames, are the independent units — each replicate also
//! taking one of the calibration's resampled fits, so the calibration's own uncertainty is
//! in it; the replicates' spread gives each share's standard error. The replicates are
//! seeded by the number of seconds, so the same seconds (a lesson rebuilt from
//! `seconds.csv`) give the same interval.

use rand::{Rng, SeedableRng};

use super::scaling::{log_probabilities, ProbabilityCalibration, ScalingFit};

/// Bootstrap replicates of a lesson (standard errors, not tail percentiles, are read off
/// them, which 40 replicates give to about ±11 %).
const REPLICATES: usize = 40;
/// EM stops when no expression's share moves more than this.
const TOLERANCE: f64 = 1e-7;
/// A bootstrap replicate's EM stops sooner: it only feeds a standard error of about 1e-2,
/// to which 1e-5 adds nothing, and the replicates are most of a refresh's work.
const REPLICATE_TOLERANCE: f64 = 1e-5;
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
        self.summed.map(|p| p / self.faces as f64)
    }
}

/// The category shares (positive, neutral, negative) of `seconds` (none with 0 faces) and,
/// from 2 seconds on, their standard errors.
pub(super) fn shares(
    seconds: &[SecondProbabilities],
    calibration: &ProbabilityCalibration,
) -> ([f64; 3], Option<[f64; 3]>) {
    let weights: Vec<f64> = seconds.iter().map(|s| s.faces as f64).collect();
    let logs: Vec<[f64; 7]> = seconds
        .iter()
        .map(|s| log_probabilities(&s.mean()))
        .collect();
    let calibrated =
        |fit: &ScalingFit| -> Vec<[f64; 7]> { logs.iter().map(|l| fit.apply_to_logs(l)).collect() };
    let point = mix(
        TOLERANCE,
        &calibrated(&calibration.fit),
        &weights,
        &calibration.fit.prior,
        None,
    );
    if seconds.len() < 2 {
        return (by_category(&point), None);
    }
    let fits: Vec<&ScalingFit> = if calibration.resampled.is_empty() {
        vec![&calibration.fit]
    } else {
        calibration.resampled.iter().collect()
    };
    let posteriors: Vec<Vec<[f64; 7]>> = fits.iter().map(|fit| calibrated(fit)).collect();
    let mut rng = rand::rngs::StdRng::seed_from_u64(seconds.len() as u64);
    let mut replicates = Vec::with_capacity(REPLICATES);
    for r in 0..REPLICATES {
        let mut drawn = vec![0.0; seconds.len()];
        for _ in 0..seconds.len() {
            drawn[rng.random_range(0..seconds.len())] += 1.0;
        }
        let resampled: Vec<f64> = drawn.iter().zip(&weights).map(|(d, w)| d * w).collect();
        let fit = r % fits.len();
        let replicate = mix(
            REPLICATE_TOLERANCE,
            &posteriors[fit],
            &resampled,
            &fits[fit].prior,
            Some(point),
        );
        replicates.push(by_category(&replicate));
    }
    (by_category(&point), Some(standard_deviations(&replicates)))
}

/// The lesson's expression mix by EM: `posteriors` (calibrated under `prior`) re-weighted
/// until no share moves more than `tolerance`, each second counting `weights[s]`; from
/// `start` (else `prior`).
///
/// Accelerated by SQUAREM (Varadhan & Roland 2008, scheme S3): two EM steps give a
/// direction and its curvature, and the mix jumps along it, then takes one EM step to land
/// back on the simplex (a jump leaving it falls back to the two plain steps). Plain EM
/// crawls where the seconds tell expressions apart poorly — a lesson of mixed, middling
/// faces took hundreds of steps — and every step is a pass over the lesson's seconds; the
/// fixed point is the same.
fn mix(
    tolerance: f64,
    posteriors: &[[f64; 7]],
    weights: &[f64],
    prior: &[f64; 7],
    start: Option<[f64; 7]>,
) -> [f64; 7] {
    let total: f64 = weights.iter().sum();
    let mut lesson = start.unwrap_or(*prior);
    if total <= 0.0 {
        return lesson;
    }
    let step = |from: &[f64; 7]| em_step(posteriors, weights, prior, from, total);
    for _ in 0..MAX_ITERATIONS / 3 {
        let once = step(&lesson);
        let r: [f64; 7] = std::array::from_fn(|k| once[k] - lesson[k]);
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
            std::array::from_fn(|k| lesson[k] - 2.0 * alpha * r[k] + alpha * alpha * v[k]);
        lesson = if jump.iter().all(|p| p.is_finite() && *p >= 0.0) {
            step(&jump)
        } else {
            twice
        };
    }
    lesson
}

/// One EM step from the mix `from`: each second's posteriors re-weighted to it, averaged.
fn em_step(
    posteriors: &[[f64; 7]],
    weights: &[f64],
    prior: &[f64; 7],
    from: &[f64; 7],
    total: f64,
) -> [f64; 7] {
    let ratio: [f64; 7] = std::array::from_fn(|k| from[k] / prior[k]);
    let mut next = [0.0; 7];
    for (q, &weight) in posteriors.iter().zip(weights) {
        if weight == 0.0 {
            continue;
        }
        let weighted: [f64; 7] = std::array::from_fn(|k| q[k] * ratio[k]);
        let sum: f64 = weighted.iter().sum();
        if sum > 0.0 {
            for k in 0..7 {
                next[k] += weight * weighted[k] / sum;
            }
        }
    }
    next.map(|v| v / total)
}

fn squared(v: &[f64; 7]) -> f64 {
    v.iter().map(|x| x * x).sum()
}

/// Positive, neutral and negative shares of an expression mix.
fn by_category(mix: &[f64; 7]) -> [f64; 3] {
    let mut shares = [0.0; 3];
    for expression in crate::Expression::ALL {
        shares[expression.category().index()] += mix[expression.label()];
    }
    shares
}

fn standard_deviations(replicates: &[[f64; 3]]) -> [f64; 3] {
    let n = replicates.len() as f64;
    std::array::from_fn(|c| {
        let mean = replicates.iter().map(|r| r[c]).sum::<f64>() / n;
        let variance = replicates
            .iter()
            .map(|r| (r[c] - mean).powi(2))
            .sum::<f64>()
            / (n - 1.0);
        variance.sqrt()
    })
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

    fn second_of(label: usize) -> SecondProbabilities {
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
        let posteriors: Vec<[f64; 7]> = (0..300)
            .map(|s| {
                let mut p = [0.12; 7];
                p[s % 7] = 0.2;
                p[(s * 3 + 1) % 7] += 0.08;
                let total: f64 = p.iter().sum();
                p.map(|v| v / total)
            })
            .collect();
        let weights = vec![1.0; posteriors.len()];
        let prior = [0.1, 0.05, 0.15, 0.25, 0.15, 0.1, 0.2];
        let accelerated = mix(TOLERANCE, &posteriors, &weights, &prior, None);
        let mut plain = prior;
        for _ in 0..200_000 {
            plain = em_step(&posteriors, &weights, &prior, &plain, 300.0);
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
        let posteriors = [[1.0 / 7.0; 7]];
        assert_eq!(
            mix(TOLERANCE, &posteriors, &[0.0], &[1.0 / 7.0; 7], None),
            [1.0 / 7.0; 7]
        );
    }
}
