//! The sliding-window scan over the image pyramid, and the per-window cascade evaluation.
//!
//! The cascade is "compiled" for the integral table's row stride: every stump carries its
//! feature's rectangle corner offsets and weights inline, so a window costs a run of
//! sequential reads through one array, and most windows are rejected by the first stage
//! (9 stumps) without touching the rest.

use super::cascade::Cascade;
use super::group::{group_rectangles, Group, GROUP_EPS};
use super::integral::Integral;
use super::resize::Resizer;
use super::{DetectParams, GreyImage, ParamsError, Rect};

/// A stump with its feature resolved to corner offsets for one stride.
#[derive(Debug, Clone, Copy)]
struct CompiledStump {
    /// Per rectangle: offsets of its top-left, top-right, bottom-left, bottom-right corners.
    corners: [[u32; 4]; 3],
    weights: [f32; 3],
    threshold: f32,
    left: f32,
    right: f32,
}

#[derive(Debug, Clone, Copy)]
struct CompiledStage {
    end: usize,
    threshold: f32,
}

/// The inner rectangle OpenCV normalises variance over: the window less a 1-pixel border.
const NORM_INSET: usize = 1;

/// Finds faces in grey frames; owns its scratch buffers, so reuse one per thread.
pub struct Detector {
    cascade: Cascade,
    params: DetectParams,
    stride: usize,
    stumps: Vec<CompiledStump>,
    stages: Vec<CompiledStage>,
    norm_corners: [u32; 4],
    norm_area: f64,
    scaled: Vec<u8>,
    integral: Integral,
    resizer: Resizer,
    /// Raw hits of the frame being scanned (reused).
    hits: Vec<Rect>,
}

/// Room for the pyramid's levels (see `Detector::scales`).
pub const MAX_SCALES: usize = 1024;

impl Detector {
    pub fn new(cascade: Cascade, params: DetectParams) -> Result<Self, ParamsError> {
        params.validate()?;
        let mut stages = Vec::with_capacity(cascade.stages.len());
        let mut end = 0;
        for stage in &cascade.stages {
            end += stage.stumps.len();
            stages.push(CompiledStage {
                end,
                threshold: stage.threshold,
            });
        }
        let inner_w = cascade.window_width as usize - 2 * NORM_INSET;
        let inner_h = cascade.window_height as usize - 2 * NORM_INSET;
        Ok(Self {
            norm_area: (inner_w * inner_h) as f64,
            cascade,
            params,
            stride: 0,
            stumps: Vec::new(),
            stages,
            norm_corners: [0; 4],
            scaled: Vec::new(),
            integral: Integral::default(),
            resizer: Resizer::default(),
            hits: Vec::new(),
        })
    }

    pub fn params(&self) -> &DetectParams {
        &self.params
    }

    /// Changes the scan parameters (the compiled cascade stays valid: it depends only on
    /// the integral table's stride). Callers pass validated parameters.
    pub(crate) fn set_params(&mut self, params: DetectParams) {
        self.params = params;
    }

    /// Detections after grouping, like `detectMultiScale`.
    pub fn detect(&mut self, frame: GreyImage<'_>) -> Vec<Rect> {
        self.detect_groups(frame)
            .into_iter()
            .map(|g| g.rect)
            .collect()
    }

    /// Detections with the number of raw hits behind each (a confidence).
    pub fn detect_groups(&mut self, frame: GreyImage<'_>) -> Vec<Group> {
        // The hits buffer is kept frame after frame (cleared, its capacity reused).
        let mut hits = std::mem::take(&mut self.hits);
        self.scan_into(frame, &mut hits);
        let groups = group_rectangles(&hits, self.params.min_neighbors, GROUP_EPS);
        self.hits = hits;
        groups
    }

    /// Every window the cascade accepts, before grouping, in original-image coordinates.
    pub fn detect_raw(&mut self, frame: GreyImage<'_>) -> Vec<Rect> {
        let mut hits = Vec::new();
        self.scan_into(frame, &mut hits);
        hits
    }

    fn scan_into(&mut self, frame: GreyImage<'_>, hits: &mut Vec<Rect>) {
        hits.clear();
        for scale in self.scales(frame.width(), frame.height()) {
            self.scan_scale(frame, scale, hits);
        }
    }

    /// The pyramid's scale factors, as OpenCV chooses them (kept as `f32`, as it does).
    /// A fixed-capacity list on the stack: with `scale_factor` ≥ 1.01 (validated) the
    /// pyramid of a frame up to 8K has at most 600 levels; [`MAX_SCALES`] leaves room.
    fn scales(&self, width: usize, height: usize) -> heapless::Vec<f32, MAX_SCALES> {
        let (win_w, win_h) = (
            f64::from(self.cascade.window_width),
            f64::from(self.cascade.window_height),
        );
        let max_w = self.params.max_size.map_or(width as f64, f64::from);
        let max_h = self.params.max_size.map_or(height as f64, f64::from);
        let min = f64::from(self.params.min_size);
        let mut scales = heapless::Vec::new();
        let mut factor = 1.0f64;
        loop {
            let (w, h) = (
                (win_w * factor).round_ties_even(),
                (win_h * factor).round_ties_even(),
            );
            if w > max_w || h > max_h {
                break;
            }
            // Full only for a frame wider than 24 × 1.01^1024 (half a million) pixels.
            if w >= min && h >= min && scales.push(factor as f32).is_err() {
                break;
            }
            factor *= self.params.scale_factor;
        }
        scales
    }

    fn scan_scale(&mut self, frame: GreyImage<'_>, scale: f32, hits: &mut Vec<Rect>) {
        let scaled_w = (frame.width() as f32 / scale).round_ties_even() as usize;
        let scaled_h = (frame.height() as f32 / scale).round_ties_even() as usize;
        let (win_w, win_h) = (
            self.cascade.window_width as usize,
            self.cascade.window_height as usize,
        );
        if scaled_w < win_w || scaled_h < win_h {
            return;
        }
        self.resizer.resize(
            frame.pixels(),
            (frame.width(), frame.height()),
            &mut self.scaled,
            (scaled_w, scaled_h),
        );
        self.integral.compute(&self.scaled, scaled_w, scaled_h);
        self.compile_for_stride(self.integral.stride);
        let step = if scale >= 2.0 { 1 } else { 2 };
        let found_w = (win_w as f32 * scale).round_ties_even() as i32;
        let found_h = (win_h as f32 * scale).round_ties_even() as i32;
        let stride = self.integral.stride;
        // OpenCV's working size: every position where the window fits.
        let (last_x, last_y) = (scaled_w - win_w, scaled_h - win_h);
        let mut y = 0;
        while y <= last_y {
            let mut x = 0;
            while x <= last_x {
                let result = self.evaluate_window(y * stride + x);
                if result > 0 {
                    hits.push(Rect {
                        x: (x as f32 * scale).round_ties_even() as i32,
                        y: (y as f32 * scale).round_ties_even() as i32,
                        width: found_w,
                        height: found_h,
                    });
                }
                if result == 0 {
                    x += step;
                }
                x += step;
            }
            y += step;
        }
    }

    /// Resolves every feature rectangle to corner offsets for tables of this `stride`.
    fn compile_for_stride(&mut self, stride: usize) {
        if self.stride == stride && !self.stumps.is_empty() {
            return;
        }
        let offset = |x: u32, y: u32| (y as usize * stride + x as usize) as u32;
        let corners = |x: u32, y: u32, w: u32, h: u32| {
            [
                offset(x, y),
                offset(x + w, y),
                offset(x, y + h),
                offset(x + w, y + h),
            ]
        };
        self.stumps.clear();
        for stage in &self.cascade.stages {
            for stump in &stage.stumps {
                let feature = &self.cascade.features[stump.feature];
                let mut compiled = CompiledStump {
                    corners: [[0; 4]; 3],
                    weights: [0.0; 3],
                    threshold: stump.threshold,
                    left: stump.left,
                    right: stump.right,
                };
                for (i, r) in feature.rects.iter().enumerate() {
                    compiled.corners[i] = corners(r.x, r.y, r.width, r.height);
                    compiled.weights[i] = r.weight;
                }
                self.stumps.push(compiled);
            }
        }
        let inset = NORM_INSET as u32;
        self.norm_corners = corners(
            inset,
            inset,
            self.cascade.window_width - 2 * inset,
            self.cascade.window_height - 2 * inset,
        );
        self.stride = stride;
    }

    /// OpenCV's `runAt`: 1 if every stage passes, else minus the index of the failing stage
    /// (so 0 means rejected by the first stage).
    fn evaluate_window(&self, base: usize) -> i32 {
        let sum = &self.integral.sum;
        let squares = &self.integral.squares;
        let window_sum = rect_value(sum, base, &self.norm_corners) as i32;
        let window_squares = rect_value(squares, base, &self.norm_corners) as i32;
        let spread = self.norm_area * f64::from(window_squares)
            - f64::from(window_sum) * f64::from(window_sum);
        let inverse_norm = 1.0 / if spread > 0.0 { spread.sqrt() } else { 1.0 };
        let mut start = 0;
        for (index, stage) in self.stages.iter().enumerate() {
            let mut stage_sum = 0.0f64;
            for stump in &self.stumps[start..stage.end] {
                let value = f64::from(feature_value(sum, base, stump)) * inverse_norm;
                stage_sum += f64::from(if value < f64::from(stump.threshold) {
                    stump.left
                } else {
                    stump.right
                });
            }
            if stage_sum < f64::from(stage.threshold) {
                return -(index as i32);
            }
            start = stage.end;
        }
        1
    }
}

#[inline(always)]
fn rect_value(table: &[u32], base: usize, corners: &[u32; 4]) -> u32 {
    let at = |i: usize| table[base + corners[i] as usize];
    at(3)
        .wrapping_sub(at(1))
        .wrapping_sub(at(2))
        .wrapping_add(at(0))
}

/// The weighted rectangle sum, in `f32` as OpenCV computes it.
#[inline(always)]
fn feature_value(sum: &[u32], base: usize, stump: &CompiledStump) -> f32 {
    let r = |i: usize| rect_value(sum, base, &stump.corners[i]) as i32 as f32;
    let mut value = stump.weights[0] * r(0) + stump.weights[1] * r(1);
    if stump.weights[2] != 0.0 {
        value += stump.weights[2] * r(2);
    }
    value
}

#[cfg(test)]
mod tests {
    use super::*;

    fn detector(params: DetectParams) -> Detector {
        Detector::new(Cascade::frontal_face().unwrap(), params).unwrap()
    }

    #[test]
    fn scales_follow_opencv_rounding() {
        let d = detector(DetectParams::default());
        let scales = d.scales(320, 240);
        // 24·1.1^3 = 31.9 → 32 is the first window of at least 30 px.
        assert!((scales[0] - 1.331).abs() < 1e-6, "{scales:?}");
        let last = *scales.last().unwrap();
        assert!((24.0 * last).round() <= 240.0 && (24.0 * last * 1.1).round() > 240.0);
    }

    #[test]
    fn a_flat_image_has_no_faces_and_the_first_stage_rejects_it() {
        let mut d = detector(DetectParams::default());
        let pixels = vec![128u8; 160 * 120];
        let frame = GreyImage::new(160, 120, &pixels).unwrap();
        assert!(d.detect_raw(frame).is_empty());
        d.integral.compute(&pixels, 160, 120);
        d.compile_for_stride(d.integral.stride);
        // Zero variance → normaliser 1, every feature 0: stage 0 sums leaves for 0 ≥ threshold.
        assert_eq!(d.evaluate_window(0), 0);
    }

    #[test]
    fn first_stage_arithmetic_by_hand() {
        // A window whose top half is dark and bottom half bright: evaluate stage 0 by hand.
        let d0 = detector(DetectParams::default());
        let cascade = Cascade::frontal_face().unwrap();
        let mut pixels = vec![0u8; 24 * 24];
        for (i, p) in pixels.iter_mut().enumerate() {
            *p = if i / 24 < 12 { 40 } else { 200 };
        }
        let mut integral = Integral::default();
        integral.compute(&pixels, 24, 24);
        let inner_sum = f64::from(integral.rect_sum(1, 1, 22, 22));
        let inner_sq = f64::from(integral.rect_squares(1, 1, 22, 22));
        let norm = 1.0 / (484.0 * inner_sq - inner_sum * inner_sum).sqrt();
        let mut expected = 0.0f64;
        for stump in &cascade.stages[0].stumps {
            let feature = &cascade.features[stump.feature];
            let raw: f32 = feature
                .rects
                .iter()
                .map(|r| {
                    r.weight
                        * integral.rect_sum(
                            r.x as usize,
                            r.y as usize,
                            r.width as usize,
                            r.height as usize,
                        ) as f32
                })
                .sum();
            let value = f64::from(raw) * norm;
            expected += f64::from(if value < f64::from(stump.threshold) {
                stump.left
            } else {
                stump.right
            });
        }
        let mut d = d0;
        d.integral = integral;
        d.compile_for_stride(25);
        let result = d.evaluate_window(0);
        let passes = expected >= f64::from(cascade.stages[0].threshold);
        assert_eq!(result != 0, passes, "stage 0 sum {expected}");
    }
}
