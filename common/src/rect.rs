//! The pixel box a detector finds and [`crate::face_input`] crops: shared so a detection
//! goes from the firmware's detector to the common preprocessing without conversion.

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
