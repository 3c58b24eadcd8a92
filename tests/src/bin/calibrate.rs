//! Writes each shipped model's calibration into `firmware/models/models.json`: its category
//! confusions (rows true positive / neutral / negative, columns given) on the validation
//! split of the run it was trained in, its faces seen through the kiosk's own path
//! ([`ekspresi_tests::kiosk_path`]: enlarged into a camera frame, found by the detector,
//! cropped and classified as the kiosk does) — what the lesson estimate corrects for —
//! and, on the same faces, the model's probability scaling (BCTS, with fits on resampled
//! faces for the interval) that the estimate re-weights.
//!
//! It lives here, not in `model-quant`, because the kiosk's path needs the firmware's
//! detector and the two crates never depend on each other; this crate depends on both.
//! Validation faces only: never `PublicTest`.
//!
//! `cargo run --release -p ekspresi-tests --bin calibrate -- MODEL=RUN...`
//! (e.g. `lenet5=model-quant/runs/lenet5-wide-s12`); without arguments, every model that
//! already has a calibration is counted again on the run it names.

use anyhow::{bail, Context};
use ekspresi_common::estimate::{Calibration, Correction, ProbabilityCalibration};
use ekspresi_common::manifest::Manifest;
use ekspresi_tests::kiosk_path::{category_pairs, kiosk_labelled_faces, CALIBRATION_SEED};
use ekspresi_tests::{fer2013, workspace};
use model_quant::data::{self, Usage};
use model_quant::lessons::category_confusion;
use model_quant::run::RunDir;

fn main() -> anyhow::Result<()> {
    let dir = workspace().join("firmware/models");
    let mut manifest = Manifest::read(&dir)?;
    let mut wanted: Vec<(String, String)> = Vec::new();
    for arg in std::env::args().skip(1) {
        let Some((model, run)) = arg.split_once('=') else {
            bail!("expected MODEL=RUN, got {arg:?}");
        };
        wanted.push((model.to_owned(), run.to_owned()));
    }
    if wanted.is_empty() {
        wanted = manifest
            .models
            .iter()
            .filter_map(|m| {
                Some((
                    m.name.clone(),
                    m.calibration.as_ref()?.validation_of.clone(),
                ))
            })
            .collect();
    }
    let training = data::load(&fer2013())?.with_usage(Usage::Training);
    for (name, run) in wanted {
        let (_, validation) = RunDir::new(&workspace().join(&run))
            .load_config()?
            .split_faces(&training);
        let entry = manifest
            .models
            .iter_mut()
            .find(|m| m.name == name)
            .with_context(|| format!("no model named `{name}` in models.json"))?;
        let path = dir.join(
            std::path::Path::new(&entry.file)
                .file_name()
                .context("the model's file has no name")?,
        );
        let faces = kiosk_labelled_faces(&path, &validation)?;
        let pairs = category_pairs(&faces);
        let calibration = Calibration {
            validation_of: run,
            category_confusion: category_confusion(&pairs),
            probabilities: Some(ProbabilityCalibration::fit(&faces, CALIBRATION_SEED)?),
        };
        // Refuse what the kiosk would refuse, before writing it.
        Correction::new(&calibration)?;
        let scaling = calibration.probabilities.as_ref().map(|p| &p.fit);
        println!(
            "{name}: {} of {} validation faces found; {:?}; slope {:.3}",
            pairs.len(),
            validation.len(),
            calibration.category_confusion,
            scaling.map_or(f64::NAN, |fit| fit.slope)
        );
        entry.calibration = Some(calibration);
    }
    manifest.write(&dir)?;
    Ok(())
}
