//! The export pipeline: trained run → plain layers → fp32 ONNX (checked against burn's own
//! forward pass) → calibrated int8 ONNX (checked for top-1 agreement with fp32).

use std::path::{Path, PathBuf};

use anyhow::{ensure, Context, Result};
use ekspresi_common::model::ExpressionModel;
use ekspresi_common::{prepare_face_into, GreyImage, FACE_SIDE};
use rand::seq::SliceRandom;
use rand::SeedableRng;
use serde::Serialize;

use crate::data::{Faces, FACE_LEN};
use crate::fsutil::write_atomically;
use crate::metrics::argmax;
use crate::predict;
use crate::quantize::{self, WeightGranularity};
use crate::run::{self, RunDir};
use crate::{onnx, plain};

/// What an export measured; written beside the models as `<stem>.export.json`.
#[derive(Debug, Serialize)]
pub struct ExportReport {
    pub arch: String,
    pub parameters: usize,
    pub fp32_model: PathBuf,
    pub int8_model: PathBuf,
    pub fp32_bytes: usize,
    pub int8_bytes: usize,
    pub granularity: WeightGranularity,
    pub calibration_faces: usize,
    pub calibration_ranges: Vec<(f32, f32)>,
    pub check_faces: usize,
    /// Largest |burn − tract fp32| over all probabilities of the check faces.
    pub fp32_max_abs_diff: f32,
    /// Share of check faces where int8 and fp32 pick the same class.
    pub int8_top1_agreement: f64,
    pub int8_max_abs_diff: f32,
}

/// Prepared model input (`k × 2304`) for `faces`.
pub fn prepared_input(faces: &Faces) -> Vec<f32> {
    let mut input = vec![0.0; faces.len() * FACE_LEN];
    for (i, slot) in input.chunks_exact_mut(FACE_LEN).enumerate() {
        let grey = GreyImage::new(FACE_SIDE, FACE_SIDE, faces.face(i)).expect("faces are 48×48");
        prepare_face_into(grey, slot);
    }
    input
}

/// `n` faces drawn at random (seeded) from `faces`.
pub fn sample(faces: &Faces, n: usize, seed: u64) -> Faces {
    let mut indices: Vec<usize> = (0..faces.len()).collect();
    indices.shuffle(&mut rand::rngs::StdRng::seed_from_u64(seed));
    indices.truncate(n);
    faces.select(&indices)
}

/// Exports the best model of `run` to `<out_stem>-fp32.onnx` and `<out_stem>-int8.onnx`,
/// calibrating on `calibration` faces and checking on `check` faces.
pub fn export(
    run: &RunDir,
    out_stem: &Path,
    calibration: &Faces,
    check: &Faces,
    granularity: WeightGranularity,
) -> Result<ExportReport> {
    let config = run.load_config()?;
    let net = run::load_model(&config.arch, &run.best_model())?;
    let plain = plain::lower(&config.arch, &net)?;

    // The exported network must match burn's own forward pass.
    let check_input = prepared_input(check);
    let fp32 = onnx::to_bytes(&onnx::fp32_model(&plain, false));
    let burn_probabilities = predict::predict(&net, check);
    let fp32_probabilities: Vec<f32> = ExpressionModel::from_bytes(&fp32, 100)?
        .classify(&check_input)?
        .concat();
    let fp32_max_abs_diff = max_abs_diff(&burn_probabilities, &fp32_probabilities);
    ensure!(
        fp32_max_abs_diff <= 1e-4,
        "fp32 ONNX in tract differs from burn by {fp32_max_abs_diff} (> 1e-4)"
    );
    let fp32_path = with_suffix(out_stem, "-fp32.onnx");
    write_atomically(&fp32_path, &fp32)?;

    let calibration_result = quantize::calibrate(&plain, &prepared_input(calibration))?;
    let int8 = onnx::to_bytes(&quantize::int8_model(
        &plain,
        &calibration_result,
        granularity,
    )?);
    let int8_path = with_suffix(out_stem, "-int8.onnx");
    write_atomically(&int8_path, &int8)?;
    let int8_probabilities: Vec<f32> = ExpressionModel::from_bytes(&int8, 100)?
        .classify(&check_input)?
        .concat();

    let report = ExportReport {
        arch: config.arch.name.clone(),
        parameters: config.arch.parameter_count(),
        fp32_model: fp32_path,
        int8_model: int8_path,
        fp32_bytes: fp32.len(),
        int8_bytes: int8.len(),
        granularity,
        calibration_faces: calibration_result.faces,
        calibration_ranges: calibration_result.ranges,
        check_faces: check.len(),
        fp32_max_abs_diff,
        int8_top1_agreement: top1_agreement(&fp32_probabilities, &int8_probabilities),
        int8_max_abs_diff: max_abs_diff(&fp32_probabilities, &int8_probabilities),
    };
    let report_path = with_suffix(out_stem, ".export.json");
    write_atomically(
        &report_path,
        serde_json::to_string_pretty(&report)?.as_bytes(),
    )
    .with_context(|| format!("cannot write {}", report_path.display()))?;
    Ok(report)
}

fn with_suffix(stem: &Path, suffix: &str) -> PathBuf {
    let mut name = stem.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

pub fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).fold(0.0, |m, (x, y)| m.max((x - y).abs()))
}

/// Share of rows (of 7) whose argmax agrees.
pub fn top1_agreement(a: &[f32], b: &[f32]) -> f64 {
    let rows = a.len() / 7;
    let same = a
        .chunks_exact(7)
        .zip(b.chunks_exact(7))
        .filter(|(x, y)| argmax(x) == argmax(y))
        .count();
    same as f64 / rows.max(1) as f64
}
