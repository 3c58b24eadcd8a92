//! Would a lesson's shares come closer to the truth with EM prior re-estimation (Saerens,
//! Latinne & Decaestecker 2002) on probabilities calibrated by bias-corrected temperature
//! scaling (Alexandari et al. 2020) than with the kiosk's adjusted count? Issue 27 names both;
//! the kiosk ships the adjusted count, whose remaining error is mostly its calibration's
//! sampling spread (`calibration_size`), and EM uses each face's whole probability vector
//! rather than its top class. Measured on the validation split only, for every calibrated
//! shipped model: the faces the kiosk's path finds are halved at random; one half fits both
//! corrections (the 3×3 confusions, and the temperature and seven biases), the other half's
//! faces make the same simulated lessons for both; over random halvings, both ways round.
//!
//! `cargo run --release -p ekspresi-tests --bin em_estimate [-- HALVINGS LESSONS]`

use anyhow::Context;
use ekspresi_common::estimate::{estimate, Calibration, Correction, SecondBlocks};
use ekspresi_common::Expression;
use ekspresi_tests::kiosk_path::kiosk_probabilities;
use ekspresi_tests::{fer2013, workspace};
use firmware::models::Installed;
use model_quant::data::{self, Usage};
use model_quant::lessons::{category_confusion, draw_lessons, Simulation};
use model_quant::run::RunDir;
use rand::seq::SliceRandom;
use rand::SeedableRng;

/// A face the kiosk found: its true expression (label) and the model's seven probabilities.
type Seen = (usize, [f64; 7]);

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let number = |arg: Option<String>, default: usize| -> anyhow::Result<usize> {
        arg.map_or(Ok(default), |a| {
            a.parse().context("usage: em_estimate [HALVINGS LESSONS]")
        })
    };
    let halvings = number(args.next(), 10)?;
    let lessons = number(args.next(), 500)?;
    let training = data::load(&fer2013())?.with_usage(Usage::Training);
    let installed = Installed::read(&workspace().join("firmware/models"))?;
    println!(
        "Validation faces through the kiosk's path, halved at random {halvings} times (both \
         ways round); {lessons} lessons at each size per calibration (mean ± SD over calibrations)\n"
    );
    let mut interval_rows = Vec::new();
    println!("| model | faces | method | share MAE (pt) | verdict agreement |");
    println!("|---|---:|---|---:|---:|");
    for model in &installed.manifest.models {
        let Some(shipped) = &model.calibration else {
            continue;
        };
        let run = RunDir::new(&workspace().join(&shipped.validation_of));
        let (_, validation) = run.load_config()?.split_faces(&training);
        let seen: Vec<Seen> = kiosk_probabilities(&installed.path_of(model), &validation)?
            .into_iter()
            .enumerate()
            .filter_map(|(i, p)| Some((validation.label(i), p?.map(f64::from))))
            .collect();
        interval_rows.extend(
            bootstrap_coverage(&seen, lessons / 5)?
                .into_iter()
                .map(|row| format!("| {} {row}", model.name)),
        );
        for faces in [60, 600] {
            let mut results: [Vec<(f64, f64)>; 3] = Default::default();
            for halving in 0..halvings as u64 {
                let mut order = seen.clone();
                order.shuffle(&mut rand::rngs::StdRng::seed_from_u64(halving));
                let (a, b) = order.split_at(order.len() / 2);
                for (calibrating, lesson_faces) in [(a, b), (b, a)] {
                    let simulation = Simulation {
                        lessons,
                        faces,
                        seed: 53 + halving,
                    };
                    let scores = compare(calibrating, lesson_faces, simulation)?;
                    for (result, score) in results.iter_mut().zip(scores) {
                        result.push(score);
                    }
                }
            }
            let methods = [
                "adjusted count (shipped)",
                "EM on the model's probabilities",
                "EM on BCTS probabilities",
            ];
            for (method, result) in methods.iter().zip(&results) {
                let (mae, sd) = mean_sd(result.iter().map(|r| r.0));
                let (verdicts, _) = mean_sd(result.iter().map(|r| r.1));
                println!(
                    "| {} | {faces} | {method} | {mae:.2} ± {sd:.2} | {:.1} % |",
                    model.name,
                    100.0 * verdicts
                );
            }
        }
    }
    println!(
        "\nEM's 90 % intervals by bootstrap ({REPLICATES} replicates a lesson: the lesson's \
         faces resampled; with the calibration too, each replicate also takes one of \
         {CALIBRATION_REPLICATES} BCTS fits on resampled calibration faces), 600-face lessons, \
         2 halvings both ways round:\n"
    );
    println!("| model | resampled | share MAE (pt) | interval holds truth | mean width (pt) |");
    println!("|---|---|---:|---:|---:|");
    for row in interval_rows {
        println!("{row}");
    }
    Ok(())
}

/// Bootstrap replicates of a lesson.
const REPLICATES: usize = 100;
/// BCTS fits on resampled calibration faces, precomputable with the calibration.
const CALIBRATION_REPLICATES: usize = 20;

/// How often EM's bootstrap 90 % intervals hold the truth, resampling the lesson's faces
/// only, or the calibration too; rows `| resampled | MAE | coverage | width |`.
fn bootstrap_coverage(seen: &[Seen], lessons: usize) -> anyhow::Result<Vec<String>> {
    // [faces only, faces and calibration]: (absolute errors, covered, widths, shares scored)
    let mut tallies = [(0.0, 0usize, 0.0, 0usize); 2];
    for halving in 0..2u64 {
        let mut order = seen.to_vec();
        order.shuffle(&mut rand::rngs::StdRng::seed_from_u64(100 + halving));
        let (a, b) = order.split_at(order.len() / 2);
        for (calibrating, lesson_faces) in [(a, b), (b, a)] {
            let mut rng = rand::rngs::StdRng::seed_from_u64(200 + halving);
            let fitted = Fitted::new(calibrating);
            let replicates: Vec<Fitted> = (0..CALIBRATION_REPLICATES)
                .map(|_| Fitted::new(&resample(calibrating, &mut rng)))
                .collect();
            let mut pools: [Vec<&Seen>; 3] = Default::default();
            for face in lesson_faces {
                pools[category_of(face.0)].push(face);
            }
            let simulation = Simulation {
                lessons,
                faces: 600,
                seed: 300 + halving,
            };
            for lesson in draw_lessons(pools.each_ref().map(Vec::len), simulation) {
                let drawn: Vec<Seen> = lesson.faces.iter().map(|&(c, i)| *pools[c][i]).collect();
                let point = fitted.shares(&drawn);
                for (with_calibration, tally) in tallies.iter_mut().enumerate() {
                    let mut draws: Vec<[f64; 3]> = (0..REPLICATES)
                        .map(|r| {
                            let fit = if with_calibration == 1 {
                                &replicates[r % CALIBRATION_REPLICATES]
                            } else {
                                &fitted
                            };
                            fit.shares(&resample(&drawn, &mut rng))
                        })
                        .collect();
                    for c in 0..3 {
                        draws.sort_by(|x, y| x[c].total_cmp(&y[c]));
                        let (low, high) =
                            (draws[REPLICATES / 20][c], draws[REPLICATES * 19 / 20][c]);
                        let truth = lesson.truth[c];
                        tally.0 += (point[c] - truth).abs();
                        tally.1 += usize::from(low <= truth && truth <= high);
                        tally.2 += high - low;
                        tally.3 += 1;
                    }
                }
            }
        }
    }
    Ok([
        "the lesson's faces",
        "the lesson's faces and the calibration",
    ]
    .iter()
    .zip(tallies)
    .map(|(name, (errors, covered, widths, n))| {
        let n = n.max(1) as f64;
        format!(
            "| {name} | {:.2} | {:.1} % | {:.1} |",
            100.0 * errors / n,
            100.0 * covered as f64 / n,
            100.0 * widths / n
        )
    })
    .collect())
}

/// A BCTS fit and the class prior of the faces it was fitted on: EM's calibration.
struct Fitted {
    scaling: Bcts,
    prior: [f64; 7],
}

impl Fitted {
    fn new(calibrating: &[Seen]) -> Fitted {
        let mut prior = [0.0; 7];
        for (label, _) in calibrating {
            prior[*label] += 1.0 / calibrating.len() as f64;
        }
        Fitted {
            scaling: Bcts::fit(calibrating),
            prior,
        }
    }

    /// EM's category shares of a lesson's faces.
    fn shares(&self, faces: &[Seen]) -> [f64; 3] {
        let posteriors: Vec<[f64; 7]> = faces.iter().map(|(_, p)| self.scaling.apply(p)).collect();
        by_category(&em_prior(&posteriors, &self.prior))
    }
}

/// As many faces as `faces`, drawn from it with replacement.
fn resample(faces: &[Seen], rng: &mut impl rand::Rng) -> Vec<Seen> {
    (0..faces.len())
        .map(|_| faces[rng.random_range(0..faces.len())])
        .collect()
}

/// (share MAE in points, verdict agreement) of the adjusted count, of EM on the model's own
/// probabilities and of EM on BCTS-calibrated ones, fitted on `calibrating` and scored on the
/// same lessons drawn from `lesson_faces`.
fn compare(
    calibrating: &[Seen],
    lesson_faces: &[Seen],
    simulation: Simulation,
) -> anyhow::Result<[(f64, f64); 3]> {
    let pairs: Vec<(usize, usize)> = calibrating
        .iter()
        .map(|(label, p)| (category_of(*label), category_of(top(p))))
        .collect();
    let correction = Correction::new(&Calibration {
        validation_of: "a half".into(),
        category_confusion: category_confusion(&pairs),
        probabilities: None,
    })?;
    let scalings = [Bcts::IDENTITY, Bcts::fit(calibrating)];
    let mut prior = [0.0; 7];
    for (label, _) in calibrating {
        prior[*label] += 1.0 / calibrating.len() as f64;
    }
    let mut pools: [Vec<&Seen>; 3] = Default::default();
    for face in lesson_faces {
        pools[category_of(face.0)].push(face);
    }
    anyhow::ensure!(
        pools.iter().all(|p| !p.is_empty()),
        "a category has no faces"
    );
    let (mut errors, mut right) = ([0.0; 3], [0usize; 3]);
    for lesson in draw_lessons(pools.each_ref().map(Vec::len), simulation) {
        let drawn: Vec<&Seen> = lesson.faces.iter().map(|&(c, i)| pools[c][i]).collect();
        let mut blocks = SecondBlocks::default();
        for (_, p) in &drawn {
            let mut second = [0u64; 3];
            second[category_of(top(p))] = 1;
            blocks.add_second(second);
        }
        let counted = estimate(&blocks, Some(&correction))
            .context("faces")?
            .shares;
        let [plain, calibrated] = scalings.each_ref().map(|scaling| {
            let posteriors: Vec<[f64; 7]> = drawn.iter().map(|(_, p)| scaling.apply(p)).collect();
            by_category(&em_prior(&posteriors, &prior))
        });
        for (k, shares) in [counted, plain, calibrated].iter().enumerate() {
            errors[k] += (0..3)
                .map(|c| (shares[c] - lesson.truth[c]).abs())
                .sum::<f64>();
            let good = shares[0] + shares[1] > shares[2];
            right[k] += usize::from(good == (lesson.truth[0] + lesson.truth[1] > lesson.truth[2]));
        }
    }
    let n = simulation.lessons.max(1) as f64;
    Ok([0, 1, 2].map(|k| (100.0 * errors[k] / (3.0 * n), right[k] as f64 / n)))
}

/// Bias-corrected temperature scaling: calibrated logits `a·ln p + b`, fitted by maximum
/// likelihood (the negative log-likelihood is convex in `a` and `b`).
struct Bcts {
    a: f64,
    b: [f64; 7],
}

impl Bcts {
    /// The model's own probabilities.
    const IDENTITY: Bcts = Bcts {
        a: 1.0,
        b: [0.0; 7],
    };

    fn fit(faces: &[Seen]) -> Bcts {
        let mut fit = Bcts {
            a: 1.0,
            b: [0.0; 7],
        };
        let mut step = 1.0;
        for _ in 0..400 {
            let (loss, grad_a, grad_b) = fit.loss_and_gradient(faces);
            // Backtracking: halve the step until the loss falls.
            loop {
                let trial = Bcts {
                    a: fit.a - step * grad_a,
                    b: std::array::from_fn(|k| fit.b[k] - step * grad_b[k]),
                };
                if trial.loss_and_gradient(faces).0 < loss || step < 1e-9 {
                    fit = trial;
                    step *= 1.5;
                    break;
                }
                step /= 2.0;
            }
        }
        fit
    }

    fn logits(&self, p: &[f64; 7]) -> [f64; 7] {
        std::array::from_fn(|k| self.a * p[k].max(1e-7).ln() + self.b[k])
    }

    fn apply(&self, p: &[f64; 7]) -> [f64; 7] {
        softmax(&self.logits(p))
    }

    /// Mean negative log-likelihood and its gradient in `a` and `b`.
    fn loss_and_gradient(&self, faces: &[Seen]) -> (f64, f64, [f64; 7]) {
        let (mut loss, mut grad_a, mut grad_b) = (0.0, 0.0, [0.0; 7]);
        for (label, p) in faces {
            let q = self.apply(p);
            loss -= q[*label].max(1e-300).ln();
            for k in 0..7 {
                let g = q[k] - f64::from(u8::from(k == *label));
                grad_a += g * p[k].max(1e-7).ln();
                grad_b[k] += g;
            }
        }
        let n = faces.len().max(1) as f64;
        (loss / n, grad_a / n, grad_b.map(|g| g / n))
    }
}

/// The lesson's class prior by EM: posteriors calibrated under `prior` re-weighted to the
/// lesson's prior until it stops moving (Saerens et al. 2002).
fn em_prior(posteriors: &[[f64; 7]], prior: &[f64; 7]) -> [f64; 7] {
    let mut lesson = *prior;
    for _ in 0..1000 {
        let mut next = [0.0; 7];
        for q in posteriors {
            let weighted: [f64; 7] =
                std::array::from_fn(|k| q[k] * lesson[k] / prior[k].max(1e-12));
            let total: f64 = weighted.iter().sum::<f64>().max(1e-300);
            for k in 0..7 {
                next[k] += weighted[k] / total / posteriors.len() as f64;
            }
        }
        let moved = (0..7)
            .map(|k| (next[k] - lesson[k]).abs())
            .fold(0.0, f64::max);
        lesson = next;
        if moved < 1e-7 {
            break;
        }
    }
    lesson
}

fn softmax(logits: &[f64; 7]) -> [f64; 7] {
    let max = logits.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let e = logits.map(|z| (z - max).exp());
    let total: f64 = e.iter().sum();
    e.map(|v| v / total)
}

fn top(p: &[f64; 7]) -> usize {
    (0..7).max_by(|&i, &j| p[i].total_cmp(&p[j])).unwrap_or(0)
}

fn category_of(label: usize) -> usize {
    Expression::from_label(label).map_or(2, |e| e.category().index())
}

fn by_category(prior: &[f64; 7]) -> [f64; 3] {
    let mut shares = [0.0; 3];
    for (label, share) in prior.iter().enumerate() {
        shares[category_of(label)] += share;
    }
    shares
}

fn mean_sd(values: impl Iterator<Item = f64>) -> (f64, f64) {
    let values: Vec<f64> = values.collect();
    let n = values.len().max(1) as f64;
    let mean = values.iter().sum::<f64>() / n;
    let var = values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1.0).max(1.0);
    (mean, var.sqrt())
}
