//! Face detection: a Viola-Jones Haar cascade evaluator that reproduces OpenCV's
//! `CascadeClassifier::detectMultiScale` and reads its cascade files.
//!
//! Why our own: OpenCV is a heavy C++ dependency to cross-compile for the Pi, and no
//! maintained Rust crate evaluates OpenCV cascades (rustface runs SeetaFace models and is
//! unmaintained). The algorithm follows OpenCV 4 step for step so results compare box for
//! box: a pyramid of bilinearly downscaled images ([`resize`]), integral and squared-integral
//! images ([`integral`]), a 24×24 window slid with step 2 (1 from scale 2 up, and one extra
//! step after a first-stage rejection), variance normalisation over the window's inner
//! 22×22, stump stages with early rejection ([`scan`]), and `groupRectangles` ([`group`]).
//! [`track`] searches only near the last face between full scans, and [`reduce`] scans only
//! for faces of the student's size, on a reduced frame.

pub mod cascade;
pub mod group;
pub mod integral;
pub mod reduce;
pub mod resize;
pub mod scan;
pub mod track;

pub use cascade::{Cascade, CascadeError};
pub use reduce::{Reducer, ScanPlan};
pub use scan::{Detector, ScanWork};
pub use track::FaceTracker;

/// Frames are searched as the shared grey image type.
pub use ekspresi_common::GreyImage;
/// Faces are boxes of the shared geometry type, so a detection feeds `face_input` as it is.
pub use ekspresi_common::Rect;

use serde::{Deserialize, Serialize};

/// `detectMultiScale`'s parameters. Defaults as the paper's era of OpenCV examples.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DetectParams {
    /// Pyramid step between scales (> 1).
    pub scale_factor: f64,
    /// A detection needs more than this many raw hits (0 returns raw hits).
    pub min_neighbors: usize,
    /// Smallest face side in pixels.
    pub min_size: u32,
    /// Largest face side in pixels (`None`: the image size).
    pub max_size: Option<u32>,
}

impl Default for DetectParams {
    fn default() -> Self {
        Self {
            scale_factor: 1.1,
            min_neighbors: 5,
            min_size: 30,
            max_size: None,
        }
    }
}

/// The largest face side a configuration may name (an 8K frame's height).
pub const MAX_FACE_SIDE: u32 = 4320;

/// Why parameters are unusable.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ParamsError {
    #[error("scale_factor must be in 1.01..=4 (got {0}): closer to 1 multiplies the scales searched without finding more faces")]
    ScaleFactor(f64),
    #[error("min_size/max_size must be at most {MAX_FACE_SIDE} pixels")]
    TooLarge,
    #[error("min_neighbors must be at most 100 (got {0})")]
    Neighbours(usize),
    #[error("max_size {max} is smaller than min_size {min}")]
    SizeOrder { min: u32, max: u32 },
}

impl DetectParams {
    pub fn validate(&self) -> Result<(), ParamsError> {
        if !(1.01..=4.0).contains(&self.scale_factor) {
            return Err(ParamsError::ScaleFactor(self.scale_factor));
        }
        if self.min_size > MAX_FACE_SIDE || self.max_size.is_some_and(|m| m > MAX_FACE_SIDE) {
            return Err(ParamsError::TooLarge);
        }
        if self.min_neighbors > 100 {
            return Err(ParamsError::Neighbours(self.min_neighbors));
        }
        if let Some(max) = self.max_size.filter(|&m| m < self.min_size) {
            return Err(ParamsError::SizeOrder {
                min: self.min_size,
                max,
            });
        }
        Ok(())
    }
}
