//! Which faces should a model's calibration (the confusions the lesson estimate corrects
//! for) be counted on: the plain 48×48 validation faces, or the same faces as the kiosk sees
//! them ([`ekspresi_tests::kiosk_path`])? Measured on the validation split only: the faces
//! the kiosk found are halved (even and odd positions); each calibration is counted on the
//! even half — through the plain path, or through the kiosk's — and simulated lessons drawn
//! from the odd half as the kiosk sees them are corrected with each, side by side. The
//! answer decided how `calibrate` counts (MODEL_CARD.md).
//!
//! `cargo run --release -p ekspresi-tests --bin kiosk_path_calibration [-- LESSONS]`

use ekspresi_common::estimate::Calibration;
use ekspresi_tests::kiosk_path::kiosk_categories;
use ekspresi_tests::{fer2013, workspace};
use firmware::models::Installed;
use model_quant::data::{self, Usage};
use model_quant::lessons::{categories, category_confusion, simulate, Scores, Simulation};
use model_quant::run::RunDir;

/// A face's (true, given) categories.
type Pair = (usize, usize);
/// The same face through the plain path and through the kiosk's.
type BothPaths = (Pair, Pair);

fn main() -> anyhow::Result<()> {
    let lessons: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(2000);
    let training = data::load(&fer2013())?.with_usage(Usage::Training);
    let installed = Installed::read(&workspace().join("firmware/models"))?;
    for model in &installed.manifest.models {
        let Some(shipped) = &model.calibration else {
            continue;
        };
        let run = RunDir::new(&workspace().join(&shipped.validation_of));
        let (_, validation) = run.load_config()?.split_faces(&training);
        let path = installed.path_of(model);
        let plain = categories(&path, &validation)?;
        let kiosk = kiosk_categories(&path, &validation)?;
        // The faces the kiosk found, as (plain pair, kiosk pair), halved by position.
        let both: Vec<BothPaths> = plain
            .iter()
            .zip(&kiosk)
            .filter_map(|(&p, k)| Some((p, (*k)?)))
            .collect();
        let half = |parity: usize, pick: fn(&BothPaths) -> Pair| {
            both.iter()
                .enumerate()
                .filter(|(i, _)| i % 2 == parity)
                .map(|(_, b)| pick(b))
                .collect::<Vec<_>>()
        };
        let calibration = |pairs: &[(usize, usize)]| Calibration {
            validation_of: shipped.validation_of.clone(),
            category_confusion: category_confusion(pairs),
        };
        let plain_even = calibration(&half(0, |b| b.0));
        let kiosk_even = calibration(&half(0, |b| b.1));
        let kiosk_odd = half(1, |b| b.1);
        println!(
            "\n## {} — {} validation faces, {} found by the kiosk's detector\n",
            model.name,
            validation.len(),
            both.len()
        );
        print_rates("plain 48×48 path", &plain_even.category_confusion);
        print_rates("the kiosk's path", &kiosk_even.category_confusion);
        println!("\nLessons from the odd half as the kiosk sees it, corrected by a calibration counted on the even half:\n");
        println!("| faces | calibration counted through | share MAE (pt) | p90 largest (pt) | verdict agreement | bad called good | interval holds truth |");
        println!("|---:|---|---:|---:|---:|---:|---:|");
        for faces in [60, 600] {
            let simulation = Simulation {
                lessons,
                faces,
                seed: 31,
            };
            for (name, calibration) in [
                ("the plain path", &plain_even),
                ("the kiosk's path", &kiosk_even),
            ] {
                let [count, corrected] = simulate(&kiosk_odd, calibration, simulation)?;
                if name == "the plain path" {
                    print_scores(faces, "(none: the count)", &count);
                }
                print_scores(faces, name, &corrected);
            }
        }
    }
    Ok(())
}

fn print_rates(name: &str, counts: &[[u64; 3]; 3]) {
    println!("{name} (rows true positive / neutral / negative, columns given, %):");
    for row in counts {
        let n: u64 = row.iter().sum::<u64>().max(1);
        let rates: Vec<String> = row
            .iter()
            .map(|&c| format!("{:5.1}", 100.0 * c as f64 / n as f64))
            .collect();
        println!("    {}   ({n} faces)", rates.join(" "));
    }
}

fn print_scores(faces: usize, name: &str, s: &Scores) {
    println!(
        "| {faces} | {name} | {:.2} | {:.1} | {:.1} % | {:.1} % | {:.1} % |",
        s.share_mae,
        s.largest_error_p90,
        100.0 * s.verdict_agreement,
        100.0 * s.bad_called_good,
        100.0 * s.interval_coverage
    );
}
