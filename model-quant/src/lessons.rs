//! What a teacher reads, measured: simulated lessons of known mixes, a model's per-lesson
//! shares and verdicts against the truth — the plain count beside the kiosk's estimator
//! ([`ekspresi_common::estimate`]) in one run — and the category confusions that estimator
//! corrects with. The faces come in as (true, given) category pairs, so the same simulation
//! serves faces classified plainly ([`categories`]) and faces seen through the kiosk's path
//! (the `ekspresi-tests` crate's `calibrate`, `lessons` and `kiosk_path_calibration`, which
//! need the firmware's detector and so cannot live here).
//!
//! A lesson here is `n` faces drawn from a split: its true mix is uniform over the simplex
//! of (positive, neutral, negative) shares, each face's category drawn from that mix and the
//! face itself at random among the split's faces of that category. The truth a lesson is
//! scored against is the share of its own faces in each true category (what happened in
//! that lesson). Each face stands for one second of a kiosk lesson (a student's expressions
//! a second apart are far more alike than two FER faces, so real lessons give wider
//! intervals, which the estimator's per-second blocks account for).

use std::path::Path;

use anyhow::{Context, Result};
use ekspresi_common::estimate::{
    estimate, Calibration, Correction, Estimate, LabelledFace, SecondBlocks,
};
use ekspresi_common::model::ExpressionModel;
use ekspresi_common::{Category, Expression};
use rand::{Rng, SeedableRng};
use serde::Serialize;

use crate::data::Faces;
use crate::export::prepared_input;
use crate::metrics::argmax;

/// Faces per tract run.
const BATCH: usize = 64;

/// Each face's true category and the category the model at `model_path` gave it.
pub fn categories(model_path: &Path, faces: &Faces) -> Result<Vec<(usize, usize)>> {
    let model = ExpressionModel::load(model_path, BATCH)
        .with_context(|| format!("cannot load {}", model_path.display()))?;
    let probabilities = model.classify(&prepared_input(faces))?;
    Ok(faces
        .labels()
        .zip(&probabilities)
        .map(|(label, p)| (category_of(label), category_of(argmax(p))))
        .collect())
}

/// The category index of expression `label` (a label past the seven counts as negative,
/// which no checked face has).
pub fn category_of(label: usize) -> usize {
    Expression::from_label(label).map_or(Category::Negative.index(), |e| e.category().index())
}

/// A face as a simulated lesson draws it: its true category and what one second of it adds
/// to the lesson's per-category counts — one for the category the model gave it (what the
/// kiosk counts), or its category probabilities scaled to integers (the estimator's counts
/// are integers).
pub type FaceCounts = (usize, [u64; 3]);

/// A (true, given) pair as [`FaceCounts`]: one count for the given category.
pub fn one_hot((truth, given): (usize, usize)) -> FaceCounts {
    let mut counts = [0; 3];
    counts[given] = 1;
    (truth, counts)
}

/// The 3×3 confusion counts (rows true, columns given) of `pairs`.
pub fn category_confusion(pairs: &[(usize, usize)]) -> [[u64; 3]; 3] {
    let faces: Vec<FaceCounts> = pairs.iter().copied().map(one_hot).collect();
    summed_confusion(&faces)
}

/// The 3×3 confusion of `faces`: row t sums the counts of the faces truly in category t.
pub fn summed_confusion(faces: &[FaceCounts]) -> [[u64; 3]; 3] {
    let mut confusion = [[0u64; 3]; 3];
    for (truth, counts) in faces {
        for (cell, count) in confusion[*truth].iter_mut().zip(counts) {
            *cell += count;
        }
    }
    confusion
}

/// The benchmark's settings.
#[derive(Debug, Clone, Copy)]
pub struct Simulation {
    pub lessons: usize,
    pub faces: usize,
    pub seed: u64,
}

/// How close one method's lessons came to the truth.
#[derive(Debug, Clone, Serialize)]
pub struct Scores {
    pub method: &'static str,
    /// Mean absolute share error, percentage points (over lessons and the three shares).
    pub share_mae: f64,
    /// 90th percentile over lessons of the lesson's largest share error, points.
    pub largest_error_p90: f64,
    /// Lessons whose good/bad verdict is the truth's.
    pub verdict_agreement: f64,
    /// The same over close lessons (|true margin| < 20 points).
    pub close_verdict_agreement: f64,
    /// Truly bad lessons (negative ≥ the rest) called good.
    pub bad_called_good: f64,
    /// Shares whose 90 % interval holds the truth.
    pub interval_coverage: f64,
    /// Shares whose 90 % interval holds the mix the lesson's faces were drawn from (the
    /// truth of a lesson that went on for ever): what the interval would claim if it
    /// counted the draw of the lesson's own faces as uncertainty.
    pub mix_coverage: f64,
    /// Mean width of the 90 % intervals, points.
    pub interval_width: f64,
}

/// Simulates `simulation.lessons` lessons over `pairs` (each face's true and given category)
/// and scores the count and the estimator corrected by `calibration`, on the same lessons.
pub fn simulate(
    pairs: &[(usize, usize)],
    calibration: &Calibration,
    simulation: Simulation,
) -> Result<[Scores; 2]> {
    let correction = Correction::new(calibration)?;
    let faces: Vec<FaceCounts> = pairs.iter().copied().map(one_hot).collect();
    Ok([
        simulate_counts(&faces, None, simulation, "count")?,
        simulate_counts(&faces, Some(&correction), simulation, "estimate")?,
    ])
}

/// Simulates `simulation.lessons` lessons over `faces` and scores the estimate with
/// `correction` (`None`: the plain shares of the counts) as `method`. The lessons depend on
/// the seed and on how many faces of each true category there are, not on the counts: two
/// calls with the same seed and faces of the same categories score the same lessons.
pub fn simulate_counts(
    faces: &[FaceCounts],
    correction: Option<&Correction>,
    simulation: Simulation,
    method: &'static str,
) -> Result<Scores> {
    let mut pools: [Vec<[u64; 3]>; 3] = Default::default();
    for &(truth, counts) in faces {
        pools[truth].push(counts);
    }
    anyhow::ensure!(
        pools.iter().all(|p| !p.is_empty()),
        "the split lacks a category"
    );
    let sizes = pools.each_ref().map(Vec::len);
    let mut tally = Tally::default();
    for lesson in draw_lessons(sizes, simulation) {
        let mut blocks = SecondBlocks::default();
        for &(category, index) in &lesson.faces {
            blocks.add_second(pools[category][index]);
        }
        let estimated = estimate(&blocks, correction).context("a lesson without faces")?;
        tally.add(&estimated, &lesson);
    }
    Ok(tally.scores(method))
}

/// Simulates `simulation.lessons` lessons over `faces` (each face's true expression and the
/// model's seven probabilities) and scores, on the same lessons, the count, the adjusted
/// count and — when `calibration` holds the model's probability scaling — the re-weighted
/// calibrated probabilities: every method the kiosk's estimator has, side by side.
pub fn simulate_probabilities(
    faces: &[LabelledFace],
    calibration: &Calibration,
    simulation: Simulation,
) -> Result<Vec<Scores>> {
    let correction = Correction::new(calibration)?;
    let counting = correction.counting_only();
    let mut methods: Vec<(Option<&Correction>, &'static str)> =
        vec![(None, "count"), (Some(&counting), "adjusted count")];
    if calibration.probabilities.is_some() {
        methods.push((Some(&correction), "re-weighted probabilities"));
    }
    let mut pools: [Vec<&LabelledFace>; 3] = Default::default();
    for face in faces {
        pools[category_of(face.0)].push(face);
    }
    anyhow::ensure!(
        pools.iter().all(|p| !p.is_empty()),
        "the split lacks a category"
    );
    let mut tallies: Vec<Tally> = methods.iter().map(|_| Tally::default()).collect();
    for lesson in draw_lessons(pools.each_ref().map(Vec::len), simulation) {
        let mut blocks = SecondBlocks::default();
        for &(category, index) in &lesson.faces {
            let (_, p) = pools[category][index];
            let mut counts = [0; 3];
            counts[category_of(argmax(&p.map(|v| v as f32)))] = 1;
            blocks.add_second_with_probabilities(counts, *p);
        }
        for ((correction, _), tally) in methods.iter().zip(&mut tallies) {
            let estimated = estimate(&blocks, *correction).context("a lesson without faces")?;
            tally.add(&estimated, &lesson);
        }
    }
    Ok(tallies
        .into_iter()
        .zip(&methods)
        .map(|(tally, (_, method))| tally.scores(method))
        .collect())
}

/// One simulated lesson: its true shares (of its own faces) and its faces, each as (true
/// category, index among the faces of that category).
pub struct Lesson {
    pub truth: [f64; 3],
    /// The mix its faces' categories were drawn from.
    pub mix: [f64; 3],
    pub faces: Vec<(usize, usize)>,
}

/// The lessons of `simulation`, drawn from `sizes[c]` faces of each true category c (none
/// may be 0): each lesson's mix uniform over the simplex, each face's category drawn from the
/// mix and the face at random among that category's.
pub fn draw_lessons(sizes: [usize; 3], simulation: Simulation) -> impl Iterator<Item = Lesson> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(simulation.seed);
    (0..simulation.lessons).map(move |_| {
        let mix = uniform_mix(&mut rng);
        let mut truth = [0.0; 3];
        let faces = (0..simulation.faces)
            .map(|_| {
                let category = draw(&mut rng, mix);
                truth[category] += 1.0 / simulation.faces as f64;
                (category, rng.random_range(0..sizes[category]))
            })
            .collect();
        Lesson { truth, mix, faces }
    })
}

/// A mix uniform over the simplex (Dirichlet(1, 1, 1): the spacings of two uniforms).
fn uniform_mix(rng: &mut impl Rng) -> [f64; 3] {
    let (a, b): (f64, f64) = (rng.random(), rng.random());
    let (low, high) = if a < b { (a, b) } else { (b, a) };
    [low, high - low, 1.0 - high]
}

fn draw(rng: &mut impl Rng, mix: [f64; 3]) -> usize {
    let u: f64 = rng.random();
    if u < mix[0] {
        0
    } else if u < mix[0] + mix[1] {
        1
    } else {
        2
    }
}

#[derive(Default)]
struct Tally {
    lessons: usize,
    absolute_errors: f64,
    largest_errors: Vec<f64>,
    verdicts_right: usize,
    close: usize,
    close_right: usize,
    truly_bad: usize,
    bad_called_good: usize,
    covered: usize,
    covered_mix: usize,
    widths: f64,
}

impl Tally {
    fn add(&mut self, estimate: &Estimate, lesson: &Lesson) {
        let truth = lesson.truth;
        self.lessons += 1;
        let mut largest: f64 = 0.0;
        for (k, &true_share) in truth.iter().enumerate() {
            let error = (estimate.shares[k] - true_share).abs();
            self.absolute_errors += error;
            largest = largest.max(error);
            let [low, high] = estimate.interval_90(k);
            self.covered += usize::from(low <= true_share && true_share <= high);
            let mix = lesson.mix[k];
            self.covered_mix += usize::from(low <= mix && mix <= high);
            self.widths += high - low;
        }
        self.largest_errors.push(largest);
        let true_margin = truth[0] + truth[1] - truth[2];
        let truly_good = true_margin > 0.0;
        let right = estimate.is_good() == truly_good;
        self.verdicts_right += usize::from(right);
        if true_margin.abs() < 0.2 {
            self.close += 1;
            self.close_right += usize::from(right);
        }
        if !truly_good {
            self.truly_bad += 1;
            self.bad_called_good += usize::from(estimate.is_good());
        }
    }

    fn scores(mut self, method: &'static str) -> Scores {
        let ratio = |a: usize, b: usize| a as f64 / b.max(1) as f64;
        self.largest_errors.sort_by(f64::total_cmp);
        let p90 = self
            .largest_errors
            .get((self.largest_errors.len() * 9 / 10).min(self.largest_errors.len().max(1) - 1))
            .copied()
            .unwrap_or(0.0);
        Scores {
            method,
            share_mae: 100.0 * self.absolute_errors / (3 * self.lessons.max(1)) as f64,
            largest_error_p90: 100.0 * p90,
            verdict_agreement: ratio(self.verdicts_right, self.lessons),
            close_verdict_agreement: ratio(self.close_right, self.close),
            bad_called_good: ratio(self.bad_called_good, self.truly_bad),
            interval_coverage: ratio(self.covered, 3 * self.lessons),
            mix_coverage: ratio(self.covered_mix, 3 * self.lessons),
            interval_width: 100.0 * self.widths / (3 * self.lessons.max(1)) as f64,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Faces of a model that sees the true expression through noise and says so twice too
    /// confidently: its logits are 2·(1.2 for the true label + N(0, 1) each).
    fn noisy_faces(n: usize, seed: u64) -> Vec<LabelledFace> {
        use rand_distr::{Distribution, Normal};
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        let noise = Normal::new(0.0, 1.0).unwrap();
        (0..n)
            .map(|i| {
                let label = i % 7;
                let logits: [f64; 7] = std::array::from_fn(|k| {
                    2.0 * (f64::from(u8::from(k == label)) * 1.2 + noise.sample(&mut rng))
                });
                let max = logits.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                let e = logits.map(|z| (z - max).exp());
                let total: f64 = e.iter().sum();
                (label, e.map(|v| v / total))
            })
            .collect()
    }

    #[test]
    fn re_weighting_calibrated_probabilities_beats_the_count() {
        use ekspresi_common::estimate::ProbabilityCalibration;
        let calibrating = noisy_faces(3_000, 1);
        let pairs: Vec<(usize, usize)> = calibrating
            .iter()
            .map(|(label, p)| {
                (
                    category_of(*label),
                    category_of(argmax(&p.map(|v| v as f32))),
                )
            })
            .collect();
        let calibration = Calibration {
            validation_of: "test".into(),
            category_confusion: category_confusion(&pairs),
            probabilities: Some(ProbabilityCalibration::fit(&calibrating, 2).unwrap()),
        };
        let simulation = Simulation {
            lessons: 60,
            faces: 300,
            seed: 3,
        };
        let scores =
            simulate_probabilities(&noisy_faces(3_000, 4), &calibration, simulation).unwrap();
        let methods: Vec<&str> = scores.iter().map(|s| s.method).collect();
        assert_eq!(
            methods,
            ["count", "adjusted count", "re-weighted probabilities"]
        );
        let [count, adjusted, reweighted] = [0, 1, 2].map(|k| scores[k].share_mae);
        assert!(count > 5.0, "{scores:?}");
        assert!(reweighted < adjusted && reweighted < 4.5, "{scores:?}");
        assert!(scores[2].interval_coverage > 0.8, "{scores:?}");
    }

    #[test]
    fn a_perfect_model_needs_no_correction_and_a_confused_one_is_corrected() {
        // 300 faces per category; the "model" gives the truth, or a fixed confusion.
        let mut perfect = Vec::new();
        for truth in 0..3 {
            perfect.extend(std::iter::repeat_n((truth, truth), 300));
        }
        let calibration = Calibration {
            validation_of: "test".into(),
            category_confusion: category_confusion(&perfect),
            probabilities: None,
        };
        let simulation = Simulation {
            lessons: 200,
            faces: 100,
            seed: 1,
        };
        let [count, corrected] = simulate(&perfect, &calibration, simulation).unwrap();
        assert!(count.share_mae < 1e-9 && corrected.share_mae < 1e-9);
        assert_eq!(count.verdict_agreement, 1.0);
        // Half of each category given as the next one: the count is far off, the estimate
        // (calibrated on the same confusion) near.
        let confused: Vec<(usize, usize)> = perfect
            .iter()
            .enumerate()
            .map(|(i, &(t, _))| (t, if i % 4 == 0 { (t + 1) % 3 } else { t }))
            .collect();
        let calibration = Calibration {
            validation_of: "test".into(),
            category_confusion: category_confusion(&confused),
            probabilities: None,
        };
        let longer = Simulation {
            faces: 600,
            ..simulation
        };
        let [count, corrected] = simulate(&confused, &calibration, longer).unwrap();
        assert!(count.share_mae > 5.0, "{count:?}");
        assert!(corrected.share_mae < 3.0, "{corrected:?}");
        assert!(corrected.interval_coverage > 0.8, "{corrected:?}");
    }
}
