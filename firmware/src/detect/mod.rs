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
//! [`track`] optionally searches only near the last face between full scans.

pub mod cascade;
pub mod group;
pub mod integral;
pub mod resize;
pub mod scan;
pub mod track;

pub use cascade::{Cascade, CascadeError};
pub use scan::Detector;
pub use track::FaceTracker;

use serde::{Deserialize, Serialize};

/// An axis-aligned box in pixels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Rect {
    pub x: i32,
    pub y: i32,
    pub width: i32,
    pub height: i32,
}

impl Rect {
    pub fn area(&self) -> i64 {
        i64::from(self.width.max(0)) * i64::from(self.height.max(0))
    }

    /// Intersection over union.
    pub fn iou(&self, other: &Rect) -> f64 {
        let x0 = self.x.max(other.x);
        let y0 = self.y.max(other.y);
        let x1 = (self.x + self.width).min(other.x + other.width);
        let y1 = (self.y + self.height).min(other.y + other.height);
        let inter = i64::from((x1 - x0).max(0)) * i64::from((y1 - y0).max(0));
        let union = self.area() + other.area() - inter;
        if union == 0 {
            0.0
        } else {
            inter as f64 / union as f64
        }
    }
}

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

/// Why parameters are unusable.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ParamsError {
    #[error("scale_factor must be greater than 1 (got {0})")]
    ScaleFactor(f64),
    #[error("max_size {max} is smaller than min_size {min}")]
    SizeOrder { min: u32, max: u32 },
}

impl DetectParams {
    pub fn validate(&self) -> Result<(), ParamsError> {
        if !(self.scale_factor > 1.0 && self.scale_factor.is_finite()) {
            return Err(ParamsError::ScaleFactor(self.scale_factor));
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

/// A grey frame borrowed as row-major bytes.
#[derive(Debug, Clone, Copy)]
pub struct GreyFrame<'a> {
    pub width: usize,
    pub height: usize,
    pub pixels: &'a [u8],
}
