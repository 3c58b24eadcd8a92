//! The lesson benchmark (issue 27): what a teacher reads, measured. Simulated lessons of
//! known mixes — uniform over the simplex of positive / neutral / negative shares, 2,000 at
//! 60 and at 600 faces, fixed seed — drawn from FER-2013 `PublicTest` faces as the kiosk
//! sees them ([`ekspresi_tests::kiosk_path`]; a face its detector misses is not in any
//! lesson, as a missed frame counts for nothing in the kiosk), for every calibrated shipped
//! model: the plain count beside each method of the kiosk's estimator
//! ([`ekspresi_common::estimate`]: the adjusted count, and the re-weighted calibrated
//! probabilities when the model's calibration has them), in one run. `PublicTest` is scored here, so nothing is chosen by this table.
//!
//! `cargo run --release -p ekspresi-tests --bin lessons [-- LESSONS]`

use ekspresi_tests::kiosk_path::kiosk_labelled_faces;
use ekspresi_tests::{fer2013, workspace};
use firmware::models::Installed;
use model_quant::data::{self, Usage};
use model_quant::lessons::{simulate_probabilities, Simulation};

fn main() -> anyhow::Result<()> {
    let lessons: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(2000);
    let public_test = data::load(&fer2013())?.with_usage(Usage::PublicTest);
    let installed = Installed::read(&workspace().join("firmware/models"))?;
    println!(
        "{lessons} lessons at each size, mixes uniform over the simplex, PublicTest faces \
         through the kiosk's path, seed 27\n"
    );
    println!("| model | faces | method | share MAE (pt) | p90 largest error (pt) | verdict agreement | close (\\|margin\\| < 20 pt) | bad called good | 90 % interval holds truth | interval width (pt) |");
    println!("|---|---:|---|---:|---:|---:|---:|---:|---:|---:|");
    for model in &installed.manifest.models {
        let Some(calibration) = &model.calibration else {
            eprintln!("{}: no calibration, not scored", model.name);
            continue;
        };
        let seen = kiosk_labelled_faces(&installed.path_of(model), &public_test)?;
        for faces in [60, 600] {
            let simulation = Simulation {
                lessons,
                faces,
                seed: 27,
            };
            for s in simulate_probabilities(&seen, calibration, simulation)? {
                println!(
                    "| {} | {faces} | {} | {:.2} | {:.1} | {:.1} % | {:.1} % | {:.1} % | {:.1} % | {:.1} |",
                    model.name,
                    s.method,
                    s.share_mae,
                    s.largest_error_p90,
                    100.0 * s.verdict_agreement,
                    100.0 * s.close_verdict_agreement,
                    100.0 * s.bad_called_good,
                    100.0 * s.interval_coverage,
                    s.interval_width
                );
            }
        }
        eprintln!(
            "{}: {} of {} PublicTest faces found",
            model.name,
            seen.len(),
            public_test.len()
        );
    }
    Ok(())
}
