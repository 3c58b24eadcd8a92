//! Classifying a detected face: crop it (with a margin that matches how FER-2013 faces are
//! framed), turn it into model input with the one shared preprocessing function, and run the
//! int8 model in tract.

use std::path::Path;

use ekspresi_common::model::{ExpressionModel, ModelError};
use ekspresi_common::{prepare_face_into, GreyImage, FACE_SIDE};

use crate::detect::{GreyFrame, Rect};

/// The default model, shipped in the repository.
pub const DEFAULT_MODEL: &str = "models/lenet5-int8.onnx";

/// The face box grown by `margin` of its size on every side, clipped to the frame.
pub fn crop_box(face: Rect, margin: f32, width: usize, height: usize) -> Rect {
    let grow_x = (face.width as f32 * margin).round() as i32;
    let grow_y = (face.height as f32 * margin).round() as i32;
    let x0 = (face.x - grow_x).max(0);
    let y0 = (face.y - grow_y).max(0);
    let x1 = (face.x + face.width + grow_x).min(width as i32);
    let y1 = (face.y + face.height + grow_y).min(height as i32);
    Rect {
        x: x0,
        y: y0,
        width: (x1 - x0).max(1),
        height: (y1 - y0).max(1),
    }
}

/// Copies the `area` pixels out of `frame`.
pub fn crop(frame: GreyFrame<'_>, area: Rect) -> Vec<u8> {
    let mut out = Vec::with_capacity((area.width * area.height) as usize);
    for y in area.y..area.y + area.height {
        let row = y as usize * frame.width;
        out.extend_from_slice(
            &frame.pixels[row + area.x as usize..row + (area.x + area.width) as usize],
        );
    }
    out
}

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
    pub fn classify(&mut self, frame: GreyFrame<'_>, face: Rect) -> Result<[f32; 7], ModelError> {
        let area = crop_box(face, self.margin, frame.width, frame.height);
        let pixels = crop(frame, area);
        let grey = GreyImage::new(area.width as usize, area.height as usize, &pixels)
            .expect("crop_box keeps at least one pixel inside the frame");
        prepare_face_into(grey, &mut self.input);
        let probabilities = self.model.classify(&self.input)?;
        Ok(probabilities[0])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crop_box_grows_and_clips() {
        let face = Rect {
            x: 10,
            y: 20,
            width: 100,
            height: 100,
        };
        assert_eq!(
            crop_box(face, 0.1, 640, 480),
            Rect {
                x: 0,
                y: 10,
                width: 120,
                height: 120
            }
        );
        assert_eq!(crop_box(face, 0.0, 640, 480), face);
        let edge = Rect {
            x: 600,
            y: 440,
            width: 60,
            height: 60,
        };
        let clipped = crop_box(edge, 0.0, 640, 480);
        assert_eq!((clipped.width, clipped.height), (40, 40));
    }

    #[test]
    fn crop_copies_the_rows_of_the_box() {
        let pixels: Vec<u8> = (0..20).collect();
        let frame = GreyFrame {
            width: 5,
            height: 4,
            pixels: &pixels,
        };
        let area = Rect {
            x: 1,
            y: 2,
            width: 3,
            height: 2,
        };
        assert_eq!(crop(frame, area), vec![11, 12, 13, 16, 17, 18]);
    }
}
