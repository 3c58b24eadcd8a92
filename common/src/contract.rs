//! The model contract every shipped ONNX file follows, and that the firmware relies on.
//!
//! - input named [`INPUT_NAME`], float32, shape `N×1×48×48`, grey value / 255 (0..=1),
//!   row-major, top-left first (the FER-2013 CSV order);
//! - output named [`OUTPUT_NAME`], float32, shape `N×7`, probabilities (they sum to 1) in
//!   FER-2013 label order, see [`crate::Expression`].

use crate::preprocess::FACE_SIDE;

/// Name of the model's only input.
pub const INPUT_NAME: &str = "input";
/// Name of the model's only output.
pub const OUTPUT_NAME: &str = "probabilities";
/// Number of classes, in FER-2013 label order.
pub const NUM_CLASSES: usize = 7;
/// Pixels in one face, the size of one input sample.
pub const INPUT_LEN: usize = FACE_SIDE * FACE_SIDE;
