//! Scanning only where the student can be: a frame searched for faces of at least the
//! student's size, on a copy shrunk by an integer factor.
//!
//! Why: OpenCV's pyramid starts at the cascade's 24-pixel window and its first levels are the
//! dearest — the most windows, and from scale 2 up a 1-pixel step. At a desk the student's
//! face is several times that size (a tenth of the frame's width, see `StudentRule`), and a
//! smaller detection is thrown away anyway. [`ScanPlan::at_least`] starts the pyramid at the
//! student's minimum size and scans the frame reduced by the largest integer factor that
//! keeps that size at or above `min_size`, with a box average (which, unlike one bilinear
//! step, also averages away the pixels it drops). The windows then cover the same faces in a
//! quarter of the pixels at factor 2. How closely it agrees with OpenCV's full scan is
//! measured, not assumed: `benches/pipeline_stages.rs` counts the frames where both choose
//! the same student face.

use super::group::Group;
use super::{DetectParams, GreyImage, Rect};

/// The largest reduction: beyond it the box average blurs a face's features away.
pub const MAX_REDUCTION: u32 = 4;

/// How a frame is searched: reduced by `factor`, then scanned with `params` (in the reduced
/// frame's pixels).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ScanPlan {
    pub factor: u32,
    pub params: DetectParams,
}

impl ScanPlan {
    /// OpenCV's full scan of the frame as it is.
    pub fn full(params: DetectParams) -> Self {
        Self { factor: 1, params }
    }

    /// Faces at least `min_face` pixels wide, on the frame reduced as far as keeps that size
    /// at or above both `params.min_size` and the cascade's `window` side.
    pub fn at_least(params: DetectParams, min_face: u32, window: u32) -> Self {
        let smallest_scan = params.min_size.max(window).max(1);
        let min_face = min_face.max(params.min_size);
        let factor = (min_face / smallest_scan).clamp(1, MAX_REDUCTION);
        let min_size = min_face.div_ceil(factor);
        let max_size = params.max_size.map(|max| (max / factor).max(min_size));
        Self {
            factor,
            params: DetectParams {
                min_size,
                max_size,
                ..params
            },
        }
    }

    /// A detection in the reduced frame, in the frame's own pixels.
    pub fn to_frame(&self, group: Group) -> Group {
        let f = self.factor as i32;
        let r = group.rect;
        Group {
            rect: Rect {
                x: r.x * f,
                y: r.y * f,
                width: r.width * f,
                height: r.height * f,
            },
            ..group
        }
    }

    /// A box in the frame's pixels, in the reduced frame's.
    pub fn to_scan(&self, rect: Rect) -> Rect {
        let f = self.factor as i32;
        Rect {
            x: rect.x / f,
            y: rect.y / f,
            width: rect.width / f,
            height: rect.height / f,
        }
    }
}

/// Shrinks frames by box averaging into a buffer kept from frame to frame.
#[derive(Debug, Default)]
pub struct Reducer {
    pixels: Vec<u8>,
    /// One output row's block sums (at most 4×4×255, so `u16`).
    sums: Vec<u16>,
}

impl Reducer {
    /// `frame` reduced by `factor` (1..=[`MAX_REDUCTION`]): each output pixel the rounded
    /// mean of a `factor × factor` block; right and bottom edges that do not fill a block
    /// are dropped. Factor 1, or a frame smaller than one block, comes back as it is.
    pub fn reduce<'a>(&'a mut self, frame: GreyImage<'a>, factor: u32) -> GreyImage<'a> {
        let f = factor.clamp(1, MAX_REDUCTION) as usize;
        let (width, height) = (frame.width() / f, frame.height() / f);
        if f == 1 || width == 0 || height == 0 {
            return frame;
        }
        self.pixels.resize(width * height, 0);
        self.sums.resize(width, 0);
        let area = (f * f) as u16;
        let band_len = frame.width() * f;
        for (out_row, band) in self
            .pixels
            .chunks_exact_mut(width)
            .zip(frame.pixels().chunks_exact(band_len))
        {
            self.sums.fill(0);
            for row in band.chunks_exact(frame.width()) {
                for (sum, block) in self.sums.iter_mut().zip(row.chunks_exact(f)) {
                    *sum += block.iter().map(|&p| u16::from(p)).sum::<u16>();
                }
            }
            for (out, &sum) in out_row.iter_mut().zip(&self.sums) {
                *out = ((sum + area / 2) / area) as u8;
            }
        }
        // The buffer was sized to width × height above.
        GreyImage::new(width, height, &self.pixels).unwrap_or(frame)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_plan_keeps_the_smallest_face_above_the_window() {
        let params = DetectParams::default(); // min_size 30
        let plan = ScanPlan::at_least(params, 64, 24);
        assert_eq!(plan.factor, 2);
        assert_eq!(plan.params.min_size, 32);
        // A face smaller than twice min_size: no reduction, the pyramid starts at it.
        let plan = ScanPlan::at_least(params, 50, 24);
        assert_eq!((plan.factor, plan.params.min_size), (1, 50));
        // min_size 0 still keeps the reduced face at least a window wide.
        let zero = DetectParams {
            min_size: 0,
            ..params
        };
        let plan = ScanPlan::at_least(zero, 64, 24);
        assert_eq!((plan.factor, plan.params.min_size), (2, 32));
        // Never more than MAX_REDUCTION, and max_size follows (never under min_size).
        let capped = DetectParams {
            max_size: Some(100),
            ..params
        };
        let plan = ScanPlan::at_least(capped, 400, 24);
        assert_eq!(plan.factor, MAX_REDUCTION);
        assert_eq!(plan.params.min_size, 100);
        assert_eq!(plan.params.max_size, Some(100));
    }

    #[test]
    fn boxes_map_between_frame_and_scan() {
        let plan = ScanPlan::at_least(DetectParams::default(), 64, 24);
        let found = Group {
            rect: Rect {
                x: 10,
                y: 20,
                width: 40,
                height: 40,
            },
            neighbors: 7,
        };
        let in_frame = plan.to_frame(found);
        assert_eq!(
            in_frame.rect,
            Rect {
                x: 20,
                y: 40,
                width: 80,
                height: 80
            }
        );
        assert_eq!(in_frame.neighbors, 7);
        assert_eq!(plan.to_scan(in_frame.rect), found.rect);
    }

    #[test]
    fn reduction_is_a_rounded_box_average() {
        // 5×3 frame, factor 2 → 2×1: the last column and row do not fill a block.
        #[rustfmt::skip]
        let pixels = [
            0, 1, 10, 20, 99,
            2, 4, 30, 41, 99,
            99, 99, 99, 99, 99,
        ];
        let frame = GreyImage::new(5, 3, &pixels).unwrap();
        let mut reducer = Reducer::default();
        let reduced = reducer.reduce(frame, 2);
        assert_eq!((reduced.width(), reduced.height()), (2, 1));
        // (0+1+2+4)/4 = 1.75 → 2; (10+20+30+41)/4 = 25.25 → 25
        assert_eq!(reduced.pixels(), &[2, 25]);
        // Factor 1 and a frame smaller than a block come back unchanged.
        let same = reducer.reduce(frame, 1);
        assert_eq!(same.pixels(), &pixels);
        let tiny = GreyImage::new(1, 1, &pixels[..1]).unwrap();
        assert_eq!(reducer.reduce(tiny, 4).width(), 1);
    }
}
