//! Classifying a detected face: the shared [`face_input`] (margin, crop, 48×48, scale — the
//! same function training's photo loader uses) turns it into model input, and the int8 model
//! runs in tract.

use std::path::Path;

use ekspresi_common::model::{ExpressionModel, ModelError};
use ekspresi_common::{face_input, GreyImage, Rect, FACE_SIDE};

/// Face → probabilities of the 7 expressions.
pub struct FaceClassifier {
    model: ExpressionModel,
    margin: f32,
    input: Vec<f32>,
}

impl FaceClassifier {
    pub fn load(model: &Path, margin: f32) -> Result<Self, ModelError> {
        Ok(Self {
            model: ExpressionModel::load(model, 1)?,
            margin,
            input: vec![0.0; FACE_SIDE * FACE_SIDE],
        })
    }

    /// Probabilities for the face at `face` in `frame`.
    pub fn classify(&mut self, frame: GreyImage<'_>, face: Rect) -> Result<[f32; 7], ModelError> {
        face_input(frame, face, self.margin, &mut self.input).map_err(ModelError::Input)?;
        let probabilities = self.model.classify(&self.input)?;
        Ok(probabilities[0])
    }
}
