//! Which faces should a model's calibration (the confusions the lesson estimate corrects
//! for) be counted on: the plain 48×48 validation faces, or the same faces as the kiosk sees
//! them ([`ekspresi_tests::kiosk_path`])? Measured on the validation split only: the faces
//! the kiosk found are halved (even and odd positions); each calibration is counted on the
//! even half — through the plain path, or through the kiosk's — and simulated lessons drawn
//! from the odd half as the kiosk sees them are corrected with each, side by side. The
//! answer decided how `calibrate` counts (MODEL_CARD.md).
//!
//! It also measures what else could make the calibration better (session 19; none did): the
//! floor (lessons corrected with their own faces' confusions), probabilistic adjusted count
//! (mean category probabilities instead of top classes), and counting every view of a
//! calibration face (three sides, mirrored) over random halvings.
//!
//! `cargo run --release -p ekspresi-tests --bin kiosk_path_calibration [-- LESSONS]`

use ekspresi_common::estimate::{Calibration, Correction};
use ekspresi_tests::kiosk_path::{
    kiosk_categories, kiosk_categories_six_views, kiosk_category_probabilities, SoftFace,
};
use ekspresi_tests::{fer2013, workspace};
use firmware::models::Installed;
use model_quant::data::{self, Usage};
use model_quant::lessons::{
    categories, category_confusion, one_hot, simulate, simulate_counts, summed_confusion,
    FaceCounts, Scores, Simulation,
};
use model_quant::run::RunDir;
use rand::SeedableRng;

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
            probabilities: None,
        };
        let plain_even = calibration(&half(0, |b| b.0));
        let kiosk_even = calibration(&half(0, |b| b.1));
        let kiosk_odd = half(1, |b| b.1);
        // The floor: the lessons' own faces' confusions, as if the calibration had no error.
        let kiosk_odd_itself = calibration(&kiosk_odd);
        println!(
            "\n## {} — {} validation faces, {} found by the kiosk's detector\n",
            model.name,
            validation.len(),
            both.len()
        );
        let soft: Vec<SoftFace> = kiosk_category_probabilities(&path, &validation)?
            .into_iter()
            .flatten()
            .collect();
        println!(
            "\nHard vs soft counts, the kiosk's path (even half calibrates, odd half's lessons):"
        );
        hard_versus_soft(&soft, lessons)?;
        more_views(&path, &validation, lessons / 4)?;
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
                (
                    "(the odd half itself: no calibration error)",
                    &kiosk_odd_itself,
                ),
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

/// Soft counts per unit of probability: the estimator's counts are integers.
const SOFT_SCALE: f64 = 1000.0;

/// Adjusted count (each face's top category) beside probabilistic adjusted count (each
/// face's category probabilities, corrected by their mean per true category: Bella et al.
/// 2010), calibrated on the even half, the same lessons drawn from the odd half.
fn hard_versus_soft(faces: &[SoftFace], lessons: usize) -> anyhow::Result<()> {
    let hard: Vec<FaceCounts> = faces.iter().map(|f| one_hot((f.0, f.1))).collect();
    let soft: Vec<FaceCounts> = faces
        .iter()
        .map(|f| (f.0, f.2.map(|p| (p * SOFT_SCALE).round() as u64)))
        .collect();
    let half = |faces: &[FaceCounts], parity: usize| -> Vec<FaceCounts> {
        faces.iter().skip(parity).step_by(2).copied().collect()
    };
    println!("\n| faces | method | share MAE (pt) | verdict agreement |\n|---:|---|---:|---:|");
    for n in [60, 600] {
        let simulation = Simulation {
            lessons,
            faces: n,
            seed: 37,
        };
        for (name, faces) in [
            ("adjusted count", &hard),
            ("probabilistic adjusted count", &soft),
        ] {
            let correction = Correction::new(&Calibration {
                validation_of: "even half".into(),
                category_confusion: summed_confusion(&half(faces, 0)),
                probabilities: None,
            })?;
            let scores = simulate_counts(&half(faces, 1), Some(&correction), simulation, name)?;
            println!(
                "| {n} | {name} | {:.2} | {:.1} % |",
                scores.share_mae,
                100.0 * scores.verdict_agreement
            );
        }
    }
    Ok(())
}

/// Random halvings of the validation faces, each scored both ways round.
const HALVINGS: u64 = 10;

/// Does counting more views of each calibration face (the three sides, then mirrored too)
/// make a better calibration than the one view `calibrate` counts? Over [`HALVINGS`] random
/// halvings of the validation faces (one variant on its own is as noisy as the halving it
/// drew), each calibration is counted on one half and corrects lessons drawn from the other
/// half's single views.
fn more_views(
    model: &std::path::Path,
    validation: &model_quant::data::Faces,
    lessons: usize,
) -> anyhow::Result<()> {
    let views = kiosk_categories_six_views(model, validation)?;
    let views_of = |i: usize| &views[i];
    let one_view = |i: usize| views[i][2 * (i % 3)];
    println!("\nViews of each calibration face counted (lessons: the other half, one view a face; mean ± SD over {} calibrations):\n", 2 * HALVINGS);
    println!("| faces | calibration | views counted (mean) | share MAE (pt) | verdict agreement |\n|---:|---|---:|---:|---:|");
    let counted: [(&str, &[usize]); 3] = [
        ("one view a face", &[]),
        ("3 sides", &[0, 2, 4]),
        ("3 sides × mirror", &[0, 1, 2, 3, 4, 5]),
    ];
    for faces in [60, 600] {
        for (name, which) in counted {
            let (mut maes, mut verdicts, mut counted_views) = (Vec::new(), 0.0, 0usize);
            for halving in 0..HALVINGS {
                let mut order: Vec<usize> = (0..views.len()).collect();
                rand::seq::SliceRandom::shuffle(
                    &mut order[..],
                    &mut rand::rngs::StdRng::seed_from_u64(halving),
                );
                let (a, b) = order.split_at(order.len() / 2);
                for (calibrating, lesson_faces) in [(a, b), (b, a)] {
                    let pairs: Vec<Pair> = if which.is_empty() {
                        calibrating.iter().filter_map(|&i| one_view(i)).collect()
                    } else {
                        calibrating
                            .iter()
                            .flat_map(|&i| which.iter().filter_map(move |&v| views_of(i)[v]))
                            .collect()
                    };
                    counted_views += pairs.len();
                    let lesson_pairs: Vec<Pair> =
                        lesson_faces.iter().filter_map(|&i| one_view(i)).collect();
                    let calibration = Calibration {
                        validation_of: "a half".into(),
                        category_confusion: category_confusion(&pairs),
                        probabilities: None,
                    };
                    let simulation = Simulation {
                        lessons,
                        faces,
                        seed: 31 + halving,
                    };
                    let [_, corrected] = simulate(&lesson_pairs, &calibration, simulation)?;
                    maes.push(corrected.share_mae);
                    verdicts += corrected.verdict_agreement;
                }
            }
            let n = maes.len() as f64;
            let mean = maes.iter().sum::<f64>() / n;
            let sd = (maes.iter().map(|m| (m - mean).powi(2)).sum::<f64>() / (n - 1.0)).sqrt();
            println!(
                "| {faces} | {name} | {} | {mean:.2} ± {sd:.2} | {:.1} % |",
                counted_views / maes.len(),
                100.0 * verdicts / n
            );
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
