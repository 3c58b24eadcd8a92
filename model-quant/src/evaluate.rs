//! Scores an ONNX model that follows the contract on a set of faces: the metrics of
//! [`crate::metrics`] plus tract's latency per face.

use std::path::Path;
use std::time::Instant;

use anyhow::Result;
use ekspresi_common::model::ExpressionModel;
use serde::Serialize;

use crate::data::Faces;
use crate::export::prepared_input;
use crate::metrics::{self, argmax, Report};

#[derive(Debug, Serialize)]
pub struct Evaluation {
    pub model: String,
    #[serde(flatten)]
    pub report: Report,
    /// Wall time of tract inference per face at `batch`, microseconds.
    pub latency_us_per_face: f64,
    pub batch: usize,
}

/// Runs `model_path` on `faces` in batches of `batch` and scores it.
pub fn evaluate(model_path: &Path, faces: &Faces, batch: usize) -> Result<Evaluation> {
    let model = ExpressionModel::load(model_path, batch)?;
    let input = prepared_input(faces);
    let started = Instant::now();
    let probabilities = model.classify(&input)?;
    let elapsed = started.elapsed().as_secs_f64();
    let predicted: Vec<usize> = probabilities.iter().map(|p| argmax(p)).collect();
    let truth: Vec<usize> = faces.labels().collect();
    Ok(Evaluation {
        model: model_path.display().to_string(),
        report: metrics::report(&truth, &predicted)?,
        latency_us_per_face: elapsed * 1e6 / faces.len().max(1) as f64,
        batch,
    })
}
