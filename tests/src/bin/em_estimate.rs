//! Does re-weighting calibrated probabilities (EM prior re-estimation, Saerens, Latinne &
//! Decaestecker 2002, on bias-corrected temperature scaling, Alexandari et al. 2020) bring a
//! lesson's shares closer to the truth than the adjusted count? The question that chose the
//! kiosk's estimator (issue 27), asked of the estimator itself ([`ekspresi_common::estimate`],
//! through [`model_quant::lessons::simulate_probabilities`]) on the validation split only:
//! the faces the kiosk's path finds are halved at random; one half calibrates (the 3×3
//! confusions, the probability scaling and its resampled fits, as `calibrate` does), the
//! other half's faces make the same simulated lessons for every method; over random
//! halvings, both ways round. Beside the shipped methods: re-weighting the model's own
//! probabilities (no scaling), and the re-weighting's interval without the calibration's
//! resampled fits (the lesson's seconds alone).
//!
//! `cargo run --release -p ekspresi-tests --bin em_estimate [-- HALVINGS LESSONS]`

use anyhow::Context;
use ekspresi_common::estimate::{Calibration, LabelledFace, ProbabilityCalibration, ScalingFit};
use ekspresi_tests::kiosk_path::{category_pairs, kiosk_labelled_faces};
use ekspresi_tests::{fer2013, workspace};
use firmware::models::Installed;
use model_quant::data::{self, Usage};
use model_quant::lessons::{category_confusion, simulate_probabilities, Scores, Simulation};
use model_quant::run::RunDir;
use rand::seq::SliceRandom;
use rand::SeedableRng;

/// The rows of a table, in order: the shipped methods, then the two variants.
const METHODS: [&str; 5] = [
    "count",
    "adjusted count",
    "re-weighted (shipped: scaling, interval with the calibration's fits)",
    "re-weighted, interval from the lesson's seconds only",
    "re-weighted, the model's own probabilities (no scaling)",
];

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let number = |arg: Option<String>, default: usize| -> anyhow::Result<usize> {
        arg.map_or(Ok(default), |a| {
            a.parse().context("usage: em_estimate [HALVINGS LESSONS]")
        })
    };
    let halvings = number(args.next(), 5)?;
    let lessons = number(args.next(), 500)?;
    let training = data::load(&fer2013())?.with_usage(Usage::Training);
    let installed = Installed::read(&workspace().join("firmware/models"))?;
    println!(
        "Validation faces through the kiosk's path, halved at random {halvings} times (both \
         ways round); {lessons} lessons at each size per calibration (mean ± SD over \
         calibrations)\n"
    );
    println!("| model | faces | method | share MAE (pt) | verdict agreement | bad called good | 90 % interval holds truth | … holds the mix drawn from | interval width (pt) |");
    println!("|---|---:|---|---:|---:|---:|---:|---:|---:|");
    for model in &installed.manifest.models {
        let Some(shipped) = &model.calibration else {
            continue;
        };
        let run = RunDir::new(&workspace().join(&shipped.validation_of));
        let (_, validation) = run.load_config()?.split_faces(&training);
        let seen = kiosk_labelled_faces(&installed.path_of(model), &validation)?;
        for faces in [60, 600] {
            let mut results: [Vec<Scores>; 5] = Default::default();
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
                    let scores = compare(calibrating, lesson_faces, simulation, halving)?;
                    for (result, score) in results.iter_mut().zip(scores) {
                        result.push(score);
                    }
                }
            }
            for (method, result) in METHODS.iter().zip(&results) {
                print_row(&model.name, faces, method, result);
            }
        }
    }
    Ok(())
}

/// The five methods' scores on the same lessons from `lesson_faces`, calibrated on
/// `calibrating`.
fn compare(
    calibrating: &[LabelledFace],
    lesson_faces: &[LabelledFace],
    simulation: Simulation,
    seed: u64,
) -> anyhow::Result<[Scores; 5]> {
    let scaled = ProbabilityCalibration::fit(calibrating, seed)?;
    let seconds_only = ProbabilityCalibration {
        resampled: Vec::new(),
        ..scaled.clone()
    };
    let unscaled = ProbabilityCalibration {
        fit: ScalingFit {
            slope: 1.0,
            biases: [0.0; 7],
            ..scaled.fit.clone()
        },
        resampled: Vec::new(),
        ..scaled.clone()
    };
    let confusion = category_confusion(&category_pairs(calibrating));
    let run = |probabilities: ProbabilityCalibration| {
        let calibration = Calibration {
            validation_of: "a half".into(),
            category_confusion: confusion,
            probabilities: Some(probabilities),
        };
        simulate_probabilities(lesson_faces, &calibration, simulation)
    };
    let [count, adjusted, shipped]: [Scores; 3] = run(scaled)?
        .try_into()
        .map_err(|_| anyhow::anyhow!("three methods expected"))?;
    let third = |scores: Vec<Scores>| scores.into_iter().nth(2).context("three methods expected");
    Ok([
        count,
        adjusted,
        shipped,
        third(run(seconds_only)?)?,
        third(run(unscaled)?)?,
    ])
}

fn print_row(model: &str, faces: usize, method: &str, results: &[Scores]) {
    let n = results.len().max(1) as f64;
    let mean = |f: fn(&Scores) -> f64| results.iter().map(f).sum::<f64>() / n;
    let mae = mean(|s| s.share_mae);
    let sd = (results
        .iter()
        .map(|s| (s.share_mae - mae).powi(2))
        .sum::<f64>()
        / (n - 1.0).max(1.0))
    .sqrt();
    println!(
        "| {model} | {faces} | {method} | {mae:.2} ± {sd:.2} | {:.1} % | {:.1} % | {:.1} % | {:.1} % | {:.1} |",
        100.0 * mean(|s| s.verdict_agreement),
        100.0 * mean(|s| s.bad_called_good),
        100.0 * mean(|s| s.interval_coverage),
        100.0 * mean(|s| s.mix_coverage),
        mean(|s| s.interval_width)
    );
}
