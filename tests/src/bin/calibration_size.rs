//! How much does the lesson estimate gain from a calibration counted on more faces? The
//! question behind training the next net with a larger validation split (issue 27: about a
//! point of vgg-lite's share error is its calibration's sampling error). Measured on the
//! validation split only: the validation faces the kiosk's path finds
//! ([`ekspresi_tests::kiosk_path`]) are cut at random into a third that lessons are drawn
//! from and two thirds that calibrate; the calibration is counted on a quarter, a half and
//! all of its two thirds, and corrects the same simulated 600-face lessons. Repeated over
//! random cuts (one cut on its own is as noisy as the faces it drew).
//!
//! `cargo run --release -p ekspresi-tests --bin calibration_size -- MODEL RUN [CUTS] [LESSONS]`
//! (MODEL an ONNX file following the contract, RUN the run folder whose validation split it
//! never trained on).

use anyhow::Context;
use ekspresi_common::estimate::Calibration;
use ekspresi_tests::fer2013;
use ekspresi_tests::kiosk_path::{found, kiosk_categories};
use model_quant::data::{self, Usage};
use model_quant::lessons::{category_confusion, simulate, Simulation};
use model_quant::run::RunDir;
use rand::seq::SliceRandom;
use rand::SeedableRng;

/// Fractions of the calibrating two thirds counted.
const FRACTIONS: [(&str, usize, usize); 3] = [("a quarter", 1, 4), ("a half", 1, 2), ("all", 1, 1)];

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let usage = "usage: calibration_size MODEL RUN [CUTS] [LESSONS]";
    let model = std::path::PathBuf::from(args.next().context(usage)?);
    let run = RunDir::new(&std::path::PathBuf::from(args.next().context(usage)?));
    let number = |arg: Option<String>, default: usize| -> anyhow::Result<usize> {
        arg.map_or(Ok(default), |a| a.parse().context(usage))
    };
    let cuts = number(args.next(), 10)?;
    let lessons = number(args.next(), 500)?;
    let training = data::load(&fer2013())?.with_usage(Usage::Training);
    let (_, validation) = run.load_config()?.split_faces(&training);
    let pairs = found(&kiosk_categories(&model, &validation)?);
    println!(
        "{}: {} validation faces, {} found by the kiosk's path; {cuts} random cuts, \
         {lessons} lessons of 600 faces each (mean ± SD over cuts)\n",
        model.display(),
        validation.len(),
        pairs.len()
    );
    println!("| calibration counted on | faces | share MAE (pt) | verdict agreement | interval holds truth |");
    println!("|---|---:|---:|---:|---:|");
    for (name, numerator, denominator) in FRACTIONS {
        let (mut maes, mut verdicts, mut coverage, mut faces) = (Vec::new(), 0.0, 0.0, 0);
        for cut in 0..cuts as u64 {
            let mut order = pairs.clone();
            order.shuffle(&mut rand::rngs::StdRng::seed_from_u64(cut));
            let (lesson_faces, calibrating) = order.split_at(order.len() / 3);
            let counted = &calibrating[..calibrating.len() * numerator / denominator];
            faces = counted.len();
            let calibration = Calibration {
                validation_of: name.into(),
                category_confusion: category_confusion(counted),
                probabilities: None,
            };
            let simulation = Simulation {
                lessons,
                faces: 600,
                seed: 41 + cut,
            };
            let [_, estimate] = simulate(lesson_faces, &calibration, simulation)?;
            maes.push(estimate.share_mae);
            verdicts += estimate.verdict_agreement;
            coverage += estimate.interval_coverage;
        }
        let n = maes.len() as f64;
        let mean = maes.iter().sum::<f64>() / n;
        let sd = (maes.iter().map(|m| (m - mean).powi(2)).sum::<f64>() / (n - 1.0).max(1.0)).sqrt();
        println!(
            "| {name} of the two thirds | {faces} | {mean:.2} ± {sd:.2} | {:.1} % | {:.1} % |",
            100.0 * verdicts / n,
            100.0 * coverage / n
        );
    }
    Ok(())
}
