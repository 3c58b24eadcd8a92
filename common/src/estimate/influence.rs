//! The re-weighted estimate's standard errors by linearising it (the sandwich, or
//! influence-function, variance of a maximum-likelihood estimate; the delta method for the
//! calibration's part).
//!
//! EM's mix `m` maximises the lesson's likelihood `ℓ(m) = Σₛ wₛ ln(aₛ · m)`, `aₛ` being
//! second `s`'s calibrated probabilities over the calibration's prior. On the simplex, one
//! expression `r` (the largest share) is one minus the others, `θ`; then each second adds
//! an independent score `uₛ = wₛ (gₛ − g_{s,r})` with `gₛ = aₛ / (aₛ · m)` (frames within a
//! second are alike: seconds are the units), the curvature is `H = Σₛ wₛ (gₛ − g_{s,r})
//! (gₛ − g_{s,r})ᵀ`, and `θ̂`'s covariance is `H⁻¹ V H⁻¹` with `V`, the score's covariance,
//! in two independent parts:
//! - the lesson's seconds: `V₁ = n/(n−1) Σₛ uₛ uₛᵀ`;
//! - the calibration: `g` depends on the fit's slope `a` and its biases less the log prior
//!   `c = b − ln prior` (all the re-weighting sees), whose covariance `Σ` is that of the
//!   calibration's resampled fits: `V₂ = D Σ Dᵀ` with `D = ∂(Σₛ uₛ)/∂(a, c)`.
//!
//! What the interval is about: the lesson's *own* shares — what its students' faces showed,
//! which the lesson benchmark scores and a teacher asks — not the mix a lesson that went on
//! for ever would reach. `V₁` counts the draw of each second's expression from the mix as
//! uncertainty; the lesson's own shares `t` carry that draw too, and in the linearisation
//! `Cov(θ̂, t) = Var(t)` when the calibrated probabilities are right (the score's covariance
//! with a second's expression is the Fisher information times the multinomial covariance),
//! so `Var(θ̂ − t) = Var(θ̂) − Var(t)`: the seconds' part less the multinomial
//! `Σw²/W² (diag m − m mᵀ)`, floored at 0 (a model that reads every face right leaves
//! nothing of the draw to be unsure of), plus the calibration's part. On validation halves
//! this took the 90 % intervals at 600 faces from holding the lesson's shares 91.8 % /
//! 93.6 % of the time (LeNet-5 / vgg-lite; `PublicTest` 95.0 / 96.8) to 85.1 / 87.3 %
//! (`em_estimate`; the halves' smaller calibrations and pools make validation the harder
//! case).
//!
//! Why the score and not EM's own fixed-point equation `Σₛ wₛ (qₛ(m) − m) = 0`: that
//! equation multiplies each expression's score by its share, so an expression EM has driven
//! to 0 gets no variance at all, and a lesson that shows no neutral face would claim its
//! neutral share is exactly 0; the score keeps the evidence against a small share, and the
//! interval reaches up from 0 as far as the seconds allow.
//!
//! One pass over the calibrated seconds and a 6×6 solve replace the 40 bootstrap replicates
//! (each an EM over every second re-calibrated under another fit) the interval first had.

// The formulas are matrix algebra over the seven expressions; indices read as the maths.
#![allow(clippy::needless_range_loop)]

use super::em::CalibratedSeconds;
use super::scaling::ProbabilityCalibration;

/// Below this share an expression is taken to sit on the simplex's boundary (EM nears 0
/// slowly; 1e-4 of a lesson is 0.01 point).
const BOUNDARY: f64 = 1e-4;
/// A boundary expression whose score is more than this many standard deviations below 0
/// stays at 0 in the linearisation (a one-sided 5 % level).
const RELEASE: f64 = 1.645;
/// A pivot below this fraction of the lesson's faces means the seconds cannot tell the
/// expressions apart: the likelihood is flat, any mix as good.
const SINGULAR: f64 = 1e-9;

/// The standard errors of the positive, neutral and negative shares of `mix`, EM's
/// estimate on `lesson`; `None` when the seconds cannot tell the expressions apart.
pub(super) fn category_errors(
    lesson: &CalibratedSeconds,
    mix: &[f64; 7],
    calibration: &ProbabilityCalibration,
) -> Option<[f64; 3]> {
    let reference = (0..7).max_by(|&i, &j| mix[i].total_cmp(&mix[j]))?;
    let terms = Terms::at(lesson, mix, reference);
    let n = lesson.weights.len() as f64;
    let of_parameters = parameter_covariance(calibration);
    // V₂ = D Σ Dᵀ, V₁ = n/(n−1) Σ u uᵀ, and the draw to take out of V₁'s part.
    let d_sigma: [[f64; 8]; 7] = std::array::from_fn(|k| {
        std::array::from_fn(|r| {
            (0..8)
                .map(|p| terms.by_parameter[k][p] * of_parameters[p][r])
                .sum()
        })
    });
    let of_calibration: [[f64; 7]; 7] = std::array::from_fn(|k| {
        std::array::from_fn(|j| {
            (0..8)
                .map(|r| d_sigma[k][r] * terms.by_parameter[j][r])
                .sum()
        })
    });
    let of_seconds: [[f64; 7]; 7] =
        std::array::from_fn(|k| std::array::from_fn(|j| terms.spread[k][j] * n / (n - 1.0)));
    let draw = draw_covariance(lesson, mix);
    let free: Vec<usize> = (0..7)
        .filter(|&k| k != reference && terms.is_free(k, mix[k]))
        .collect();
    let pick = |m: &[[f64; 7]; 7]| -> Vec<Vec<f64>> {
        free.iter()
            .map(|&i| free.iter().map(|&j| m[i][j]).collect())
            .collect()
    };
    let curvature = pick(&terms.curvature);
    let category = |k: usize| crate::Expression::ALL[k].category().index();
    let mut errors = [0.0; 3];
    for (c, error) in errors.iter_mut().enumerate() {
        // The category's share moves by h · dθ, h_j = [j in it] − [r in it].
        let h: Vec<f64> = free
            .iter()
            .map(|&j| indicator(category(j) == c) - indicator(category(reference) == c))
            .collect();
        let x = solve(curvature.clone(), h.clone(), SINGULAR * lesson.total)?;
        let of_estimate = quadratic_form(&x, &free, &of_seconds);
        let of_own_faces = quadratic_form(&h, &free, &draw);
        let variance =
            (of_estimate - of_own_faces).max(0.0) + quadratic_form(&x, &free, &of_calibration);
        *error = variance.max(0.0).sqrt();
    }
    Some(errors)
}

/// `vᵀ m v` over the expressions `free` (`v` indexed as `free`).
fn quadratic_form(v: &[f64], free: &[usize], m: &[[f64; 7]; 7]) -> f64 {
    free.iter()
        .enumerate()
        .map(|(a, &i)| {
            free.iter()
                .enumerate()
                .map(|(b, &j)| v[a] * m[i][j] * v[b])
                .sum::<f64>()
        })
        .sum()
}

/// How far the lesson's own shares stray from `mix` when each second's expression is drawn
/// from it: `Σw²/W² (diag m − m mᵀ)`, the multinomial covariance of the draw (see the
/// module doc for why it is subtracted).
fn draw_covariance(lesson: &CalibratedSeconds, mix: &[f64; 7]) -> [[f64; 7]; 7] {
    let squares: f64 = lesson.weights.iter().map(|w| w * w).sum();
    let scale = squares / (lesson.total * lesson.total);
    std::array::from_fn(|k| {
        std::array::from_fn(|j| scale * (indicator(k == j) * mix[k] - mix[k] * mix[j]))
    })
}

fn indicator(yes: bool) -> f64 {
    f64::from(u8::from(yes))
}

/// What one pass over the seconds at the estimate sums, indexed by expression (the
/// reference's row and column stay 0).
struct Terms {
    /// `H`.
    curvature: [[f64; 7]; 7],
    /// `Σₛ uₛ uₛᵀ`.
    spread: [[f64; 7]; 7],
    /// `D`: column 0 the slope, 1..8 the seven `c`.
    by_parameter: [[f64; 8]; 7],
    /// `Σₛ uₛ`: at an expression EM drove to 0, how far the lesson pushes it below.
    score: [f64; 7],
}

impl Terms {
    /// The terms at `mix` with `reference` as the expression written as one minus the
    /// others, from one pass of [`Sums`] (which do not depend on the reference:
    /// `uₛ = wₛ (gₛ − g_{s,r})`, so every term is a difference of the sums' entries).
    fn at(lesson: &CalibratedSeconds, mix: &[f64; 7], reference: usize) -> Self {
        let sums = Sums::over(lesson, mix);
        let r = reference;
        let mut terms = Terms {
            curvature: [[0.0; 7]; 7],
            spread: [[0.0; 7]; 7],
            by_parameter: [[0.0; 8]; 7],
            score: [0.0; 7],
        };
        let centred = |m: &[[f64; 7]; 7], k: usize, j: usize| m[k][j] - m[k][r] - m[r][j] + m[r][r];
        for k in (0..7).filter(|&k| k != r) {
            terms.score[k] = sums.g[k] - sums.g[r];
            terms.by_parameter[k][0] = sums.by_slope[k] - sums.by_slope[r];
            for j in 0..7 {
                terms.curvature[k][j] = centred(&sums.gg, k, j);
                terms.spread[k][j] = centred(&sums.gg_by_weight, k, j);
                // ∂g_k/∂c_j = g_k (δ_kj − q_j), q_j = g_j m_j.
                terms.by_parameter[k][j + 1] = -(sums.gg[k][j] - sums.gg[r][j]) * mix[j];
            }
            terms.by_parameter[k][k + 1] += sums.g[k];
            terms.by_parameter[k][r + 1] -= sums.g[r];
        }
        terms
    }
}

/// The weighted sums over seconds the terms are made of, `gₛ = aₛ / (aₛ · m)`.
struct Sums {
    /// `Σ w g`.
    g: [f64; 7],
    /// `Σ w g gᵀ`.
    gg: [[f64; 7]; 7],
    /// `Σ w² g gᵀ`.
    gg_by_weight: [[f64; 7]; 7],
    /// `Σ w ∂g/∂a` (the slope), `∂g_k/∂a = g_k (ln p_k − Σⱼ q_j ln p_j)`.
    by_slope: [f64; 7],
}

impl Sums {
    fn over(lesson: &CalibratedSeconds, mix: &[f64; 7]) -> Self {
        let mut sums = Sums {
            g: [0.0; 7],
            gg: [[0.0; 7]; 7],
            gg_by_weight: [[0.0; 7]; 7],
            by_slope: [0.0; 7],
        };
        let seconds = lesson
            .relative
            .iter()
            .zip(&lesson.logs)
            .zip(&lesson.weights);
        for ((a, logs), &w) in seconds {
            let sum: f64 = (0..7).map(|k| a[k] * mix[k]).sum();
            if w <= 0.0 || sum <= 0.0 {
                continue;
            }
            let inverse = 1.0 / sum;
            let g: [f64; 7] = a.map(|v| v * inverse);
            let mean_log: f64 = (0..7).map(|k| g[k] * mix[k] * logs[k]).sum();
            for k in 0..7 {
                let wg = w * g[k];
                sums.g[k] += wg;
                sums.by_slope[k] += wg * (logs[k] - mean_log);
                // Symmetric: the upper triangle here, mirrored below.
                for j in k..7 {
                    sums.gg[k][j] += wg * g[j];
                    sums.gg_by_weight[k][j] += w * wg * g[j];
                }
            }
        }
        for k in 0..7 {
            for j in 0..k {
                sums.gg[k][j] = sums.gg[j][k];
                sums.gg_by_weight[k][j] = sums.gg_by_weight[j][k];
            }
        }
        sums
    }
}

impl Terms {
    /// Whether expression `k`, at share `share`, moves with the lesson's seconds: inside
    /// the simplex, or on its boundary with a score so little below 0 that a lesson like
    /// this one would often lift it (within [`RELEASE`] standard deviations).
    fn is_free(&self, k: usize, share: f64) -> bool {
        share >= BOUNDARY || self.score[k] > -RELEASE * self.spread[k][k].sqrt()
    }
}

/// The covariance of (slope, `c`) over the calibration's resampled fits (zero with fewer
/// than two: no calibration term).
fn parameter_covariance(calibration: &ProbabilityCalibration) -> [[f64; 8]; 8] {
    let parameters: Vec<[f64; 8]> = calibration
        .resampled
        .iter()
        .map(|fit| {
            std::array::from_fn(|p| match p {
                0 => fit.slope,
                _ => fit.biases[p - 1] - fit.prior[p - 1].ln(),
            })
        })
        .collect();
    let mut covariance = [[0.0; 8]; 8];
    if parameters.len() < 2 {
        return covariance;
    }
    let n = parameters.len() as f64;
    let mean: [f64; 8] = std::array::from_fn(|p| parameters.iter().map(|v| v[p]).sum::<f64>() / n);
    for v in &parameters {
        for p in 0..8 {
            for r in 0..8 {
                covariance[p][r] += (v[p] - mean[p]) * (v[r] - mean[r]) / (n - 1.0);
            }
        }
    }
    covariance
}

/// `x` with `a x = b` by Gaussian elimination with partial pivoting; `None` when a pivot
/// is under `smallest` in size.
fn solve(mut a: Vec<Vec<f64>>, mut b: Vec<f64>, smallest: f64) -> Option<Vec<f64>> {
    let n = b.len();
    for column in 0..n {
        let pivot =
            (column..n).max_by(|&i, &j| a[i][column].abs().total_cmp(&a[j][column].abs()))?;
        let size = a[pivot][column].abs();
        // NaN is no pivot either.
        if size.is_nan() || size < smallest {
            return None;
        }
        a.swap(column, pivot);
        b.swap(column, pivot);
        for row in column + 1..n {
            let factor = a[row][column] / a[column][column];
            for k in column..n {
                a[row][k] -= factor * a[column][k];
            }
            b[row] -= factor * b[column];
        }
    }
    let mut x = vec![0.0; n];
    for row in (0..n).rev() {
        let rest: f64 = (row + 1..n).map(|k| a[row][k] * x[k]).sum();
        x[row] = (b[row] - rest) / a[row][row];
    }
    Some(x)
}

#[cfg(test)]
mod tests {
    use super::super::em::{self, tests::honest, SecondProbabilities};
    use rand::{Rng, SeedableRng};

    /// A face the honest model of `em::tests` shows: its look is its label 60 % of the
    /// time, else any other label.
    fn look_of(label: usize, rng: &mut impl Rng) -> usize {
        if rng.random::<f64>() < 0.6 {
            label
        } else {
            let other = rng.random_range(0..6);
            if other >= label {
                other + 1
            } else {
                other
            }
        }
    }

    fn draw(mix: &[f64; 7], rng: &mut impl Rng) -> usize {
        let u: f64 = rng.random();
        let mut cumulative = 0.0;
        (0..7)
            .find(|&k| {
                cumulative += mix[k];
                u < cumulative
            })
            .unwrap_or(6)
    }

    /// The sample standard deviation of `values`.
    fn spread(values: impl Iterator<Item = f64> + Clone) -> f64 {
        let n = values.clone().count() as f64;
        let mean = values.clone().sum::<f64>() / n;
        (values.map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1.0)).sqrt()
    }

    #[test]
    fn the_linearised_errors_match_the_estimate_s_error_on_the_lesson_s_own_faces() {
        let truth = [0.05, 0.02, 0.08, 0.30, 0.15, 0.10, 0.30];
        let mut rng = rand::rngs::StdRng::seed_from_u64(27);
        let (lessons, seconds_each) = (1_000, 200);
        let mut estimates = Vec::new();
        let mut own_shares = Vec::new();
        let mut errors = Vec::new();
        for _ in 0..lessons {
            let labels: Vec<usize> = (0..seconds_each).map(|_| draw(&truth, &mut rng)).collect();
            let mut own = [0.0; 3];
            for &label in &labels {
                own[crate::Expression::ALL[label].category().index()] += 1.0 / seconds_each as f64;
            }
            let seconds: Vec<SecondProbabilities> = labels
                .iter()
                .map(|&label| em::tests::second_of(look_of(label, &mut rng)))
                .collect();
            let (shares, error) = em::shares(&seconds, &honest());
            estimates.push(shares);
            own_shares.push(own);
            errors.push(error.unwrap());
        }
        for c in 0..3 {
            let off_own = spread(estimates.iter().zip(&own_shares).map(|(e, o)| e[c] - o[c]));
            let around_mean = spread(estimates.iter().map(|e| e[c]));
            let claimed = errors.iter().map(|e| e[c]).sum::<f64>() / lessons as f64;
            assert!(
                (claimed / off_own - 1.0).abs() < 0.15,
                "category {c}: claimed {claimed:.4}, spread off the own shares {off_own:.4}"
            );
            // The draw of the lesson's expressions is not counted: narrower than the
            // estimate's spread over lessons of the same mix.
            assert!(
                claimed < 0.97 * around_mean,
                "category {c}: claimed {claimed:.4}, spread over lessons {around_mean:.4}"
            );
        }
    }

    #[test]
    fn the_calibration_s_spread_widens_the_errors() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(3);
        let truth = [0.1, 0.05, 0.1, 0.25, 0.2, 0.1, 0.2];
        let seconds: Vec<SecondProbabilities> = (0..600)
            .map(|_| em::tests::second_of(look_of(draw(&truth, &mut rng), &mut rng)))
            .collect();
        let exact = em::shares(&seconds, &honest()).1.unwrap();
        let mut uncertain = honest();
        for (i, fit) in uncertain.resampled.iter_mut().enumerate() {
            fit.slope = 0.9 + 0.1 * i as f64;
            fit.biases[3] = 0.2 * i as f64 - 0.2;
        }
        let widened = em::shares(&seconds, &uncertain).1.unwrap();
        for c in 0..3 {
            assert!(widened[c] > exact[c], "{widened:?} vs {exact:?}");
        }
    }

    #[test]
    fn the_calibration_part_matches_the_spread_of_estimates_under_each_fit() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(5);
        let truth = [0.1, 0.05, 0.1, 0.25, 0.2, 0.1, 0.2];
        let seconds: Vec<SecondProbabilities> = (0..3_000)
            .map(|_| em::tests::second_of(look_of(draw(&truth, &mut rng), &mut rng)))
            .collect();
        // Fits as far apart as the shipped calibrations' (slope SD 0.02–0.03, c 0.02–0.11).
        let mut uncertain = honest();
        uncertain.resampled = (0..200)
            .map(|_| {
                let mut fit = uncertain.fit.clone();
                fit.slope = rng.random_range(0.95..1.05);
                fit.biases = std::array::from_fn(|_| rng.random_range(-0.1..0.1));
                fit
            })
            .collect();
        let sampling = em::shares(&seconds, &honest()).1.unwrap();
        let both = em::shares(&seconds, &uncertain).1.unwrap();
        // Each resampled fit as the lesson's only calibration: the spread of the estimates.
        let under_each: Vec<[f64; 3]> = uncertain
            .resampled
            .iter()
            .map(|fit| {
                let mut one = honest();
                one.fit = fit.clone();
                em::shares(&seconds, &one).0
            })
            .collect();
        for c in 0..3 {
            let n = under_each.len() as f64;
            let mean = under_each.iter().map(|e| e[c]).sum::<f64>() / n;
            let spread = (under_each
                .iter()
                .map(|e| (e[c] - mean).powi(2))
                .sum::<f64>()
                / (n - 1.0))
                .sqrt();
            let claimed = (both[c].powi(2) - sampling[c].powi(2)).sqrt();
            assert!(
                (claimed / spread - 1.0).abs() < 0.1,
                "category {c}: calibration part {claimed:.4}, spread under the fits {spread:.4}"
            );
        }
    }

    #[test]
    fn seconds_that_cannot_tell_expressions_apart_have_no_errors() {
        // Every second a face the model cannot read at all (the same probability for every
        // expression): any mix explains them equally well.
        let blank = SecondProbabilities {
            faces: 3,
            summed: [3.0 / 7.0; 7],
        };
        let (shares, errors) = em::shares(&vec![blank; 50], &honest());
        assert_eq!(errors, None);
        // EM does not move from the calibration's mix.
        assert!((shares[0] - 2.0 / 7.0).abs() < 1e-9, "{shares:?}");
        // Seconds that all look happy are best explained by a lesson of happy faces.
        let happy = em::shares(&vec![em::tests::second_of(3); 50], &honest());
        assert!(happy.0[0] > 0.99, "{happy:?}");
    }

    #[test]
    fn solve_finds_x_and_refuses_a_singular_system() {
        let a = vec![vec![2.0, 1.0], vec![1.0, 3.0]];
        let x = super::solve(a, vec![3.0, 5.0], 1e-12).unwrap();
        assert!(
            (x[0] - 0.8).abs() < 1e-12 && (x[1] - 1.4).abs() < 1e-12,
            "{x:?}"
        );
        let singular = vec![vec![1.0, 2.0], vec![2.0, 4.0]];
        assert_eq!(super::solve(singular, vec![1.0, 1.0], 1e-9), None);
    }
}
