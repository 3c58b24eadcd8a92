//! The export pipeline, one type per stage as tract does with its model stages:
//! [`Lowered`] (a trained run's best net as plain layers, batch-norm folded) →
//! [`Fp32Graph`] (fp32 ONNX, checked against burn's own forward pass) → [`Int8Graph`]
//! (calibrated int8 ONNX, compared with its fp32 twin). Each stage can only be built from
//! the one before it, so an int8 graph always has a checked fp32 twin. [`export`] chains
//! them and writes the files and the report.

use std::path::{Path, PathBuf};

use anyhow::{ensure, Context, Result};
use ekspresi_common::manifest::{export_file, EXPORT_RECORD_SUFFIX, FP32_SUFFIX, INT8_SUFFIX};
use ekspresi_common::model::ExpressionModel;
use ekspresi_common::{prepare_face_into, GreyImage, FACE_SIDE};
use rand::seq::SliceRandom;
use rand::SeedableRng;
use serde::Serialize;

use crate::data::{Faces, FACE_LEN};
use crate::fsutil::write_atomically;
use crate::metrics::argmax;
use crate::nets::{Arch, Net};
use crate::onnx::Readout;
use crate::plain::PlainNet;
use crate::predict;
use crate::quantize::{self, Calibration, WeightGranularity};
use crate::run::{self, RunDir};
use crate::{onnx, plain};

/// Largest |burn − tract| an fp32 export may show on any probability.
const FP32_TOLERANCE: f32 = 1e-4;
/// Faces per tract call when comparing graphs.
const CHECK_BATCH: usize = 100;

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
    /// Whether the graphs average each face with its mirror image.
    pub readout: Readout,
    pub calibration_faces: usize,
    pub calibration_ranges: Vec<(f32, f32)>,
    pub check_faces: usize,
    /// Largest |burn − tract fp32| over all probabilities of the check faces.
    pub fp32_max_abs_diff: f32,
    /// Share of check faces where int8 and fp32 pick the same class.
    pub int8_top1_agreement: f64,
    pub int8_max_abs_diff: f32,
}

/// Stage 1: a run's best weights as burn's net and as plain layers.
pub struct Lowered {
    arch: Arch,
    net: Net,
    plain: PlainNet,
}

impl Lowered {
    /// Loads `run`'s best epoch and lowers it.
    pub fn from_run(run: &RunDir) -> Result<Self> {
        let arch = run.load_config()?.arch;
        let net = run::load_model(&arch, &run.best_model())?;
        let plain = plain::lower(&arch, &net)?;
        Ok(Self { arch, net, plain })
    }

    /// Stage 2: the fp32 ONNX graph, which must give burn's probabilities (read out the
    /// same way) on `check` faces.
    pub fn to_fp32(self, check: &Faces, readout: Readout) -> Result<Fp32Graph> {
        let bytes = onnx::to_bytes(&onnx::fp32_model(&self.plain, readout, false));
        let check_input = prepared_input(check);
        let probabilities = run_graph(&bytes, &check_input)?;
        let max_abs_diff_from_burn = max_abs_diff(
            &burn_probabilities(&self.net, check, readout),
            &probabilities,
        );
        ensure!(
            max_abs_diff_from_burn <= FP32_TOLERANCE,
            "fp32 ONNX in tract differs from burn by {max_abs_diff_from_burn} (> {FP32_TOLERANCE})"
        );
        Ok(Fp32Graph {
            arch: self.arch,
            plain: self.plain,
            readout,
            bytes,
            check_input,
            probabilities,
            max_abs_diff_from_burn,
        })
    }
}

/// Stage 2: the fp32 ONNX graph and what it gave on the check faces.
pub struct Fp32Graph {
    arch: Arch,
    plain: PlainNet,
    readout: Readout,
    bytes: Vec<u8>,
    check_input: Vec<f32>,
    probabilities: Vec<f32>,
    max_abs_diff_from_burn: f32,
}

impl Fp32Graph {
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// Stage 3: the int8 graph, activation ranges calibrated on `calibration` faces, then
    /// run on the same check faces as this graph.
    pub fn quantize(
        &self,
        calibration: &Faces,
        granularity: WeightGranularity,
    ) -> Result<Int8Graph> {
        let calibration = quantize::calibrate(&self.plain, &prepared_input(calibration))?;
        let bytes = onnx::to_bytes(&quantize::int8_model(
            &self.plain,
            &calibration,
            granularity,
            self.readout,
        )?);
        let probabilities = run_graph(&bytes, &self.check_input)?;
        Ok(Int8Graph {
            bytes,
            calibration,
            granularity,
            top1_agreement: top1_agreement(&self.probabilities, &probabilities),
            max_abs_diff_from_fp32: max_abs_diff(&self.probabilities, &probabilities),
        })
    }
}

/// Stage 3: the int8 ONNX graph and how far it is from its fp32 twin.
pub struct Int8Graph {
    bytes: Vec<u8>,
    calibration: Calibration,
    granularity: WeightGranularity,
    top1_agreement: f64,
    max_abs_diff_from_fp32: f32,
}

impl Int8Graph {
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }
}

/// Exports the best model of `run` to `<out_stem>-fp32.onnx` and `<out_stem>-int8.onnx`,
/// calibrating on `calibration` faces and checking on `check` faces.
pub fn export(
    run: &RunDir,
    out_stem: &Path,
    calibration: &Faces,
    check: &Faces,
    granularity: WeightGranularity,
    readout: Readout,
) -> Result<ExportReport> {
    let fp32 = Lowered::from_run(run)?.to_fp32(check, readout)?;
    let int8 = fp32.quantize(calibration, granularity)?;
    let fp32_path = export_file(out_stem, FP32_SUFFIX);
    write_atomically(&fp32_path, fp32.bytes())?;
    let int8_path = export_file(out_stem, INT8_SUFFIX);
    write_atomically(&int8_path, int8.bytes())?;
    let report = ExportReport {
        arch: fp32.arch.name.clone(),
        parameters: fp32.arch.parameter_count(),
        fp32_model: fp32_path,
        int8_model: int8_path,
        fp32_bytes: fp32.bytes.len(),
        int8_bytes: int8.bytes.len(),
        granularity: int8.granularity,
        readout,
        calibration_faces: int8.calibration.faces,
        calibration_ranges: int8.calibration.ranges,
        check_faces: check.len(),
        fp32_max_abs_diff: fp32.max_abs_diff_from_burn,
        int8_top1_agreement: int8.top1_agreement,
        int8_max_abs_diff: int8.max_abs_diff_from_fp32,
    };
    let report_path = export_file(out_stem, EXPORT_RECORD_SUFFIX);
    write_atomically(
        &report_path,
        serde_json::to_string_pretty(&report)?.as_bytes(),
    )
    .with_context(|| format!("cannot write {}", report_path.display()))?;
    Ok(report)
}

/// burn's probabilities for `faces`, read out as the graph will be.
fn burn_probabilities(net: &Net, faces: &Faces, readout: Readout) -> Vec<f32> {
    let plain = predict::predict(net, faces);
    match readout {
        Readout::Single => plain,
        Readout::MirrorAverage => {
            predict::average(&plain, &predict::predict(net, &faces.mirrored()))
        }
    }
}

/// Class probabilities of the ONNX graph `bytes` in tract for prepared `input`.
fn run_graph(bytes: &[u8], input: &[f32]) -> Result<Vec<f32>> {
    Ok(ExpressionModel::from_bytes(bytes, CHECK_BATCH)?
        .classify(input)?
        .concat())
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
