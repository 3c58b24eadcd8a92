//! The sliding-window scan over the image pyramid, and the per-window cascade evaluation.
//!
//! The cascade is "compiled" for the integral table's row stride: every stump carries its
//! feature's rectangle corner offsets and weights inline, so a window costs a run of
//! sequential reads through one array, and most windows are rejected by the first stage
//! (9 stumps) without touching the rest.

use super::cascade::Cascade;
use super::group::{Group, Grouper, GROUP_EPS};
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

/// The most threads one frame's scan is split over (a Pi 4 has four cores).
pub const MAX_SCAN_THREADS: usize = 4;

/// Finds faces in grey frames; owns its scratch buffers, so reuse one per thread.
///
/// The pyramid's levels are independent, so a frame's levels are split into contiguous runs
/// of about equal work, one per scan thread, each with its own buffers (`LevelWorker`), run
/// in parallel on rayon's pool; their hits are concatenated in level order, so the result is
/// exactly the single-threaded one.
pub struct Detector {
    shared: Shared,
    workers: Vec<LevelWorker>,
    /// Raw hits of the frame being scanned (reused).
    hits: Vec<Rect>,
    /// Grouping's working lists (reused).
    grouper: Grouper,
    /// Pixels of the region a local search cuts out (reused; see `track`).
    pub(super) region: Vec<u8>,
}

/// What every scan thread reads: the cascade, its stages and the parameters.
struct Shared {
    cascade: Cascade,
    params: DetectParams,
    stages: Vec<CompiledStage>,
    norm_area: f64,
}

/// One scan thread's buffers: a level's image, its integral tables and the cascade compiled
/// for their stride.
#[derive(Default)]
struct LevelWorker {
    stride: usize,
    stumps: Vec<CompiledStump>,
    norm_corners: [u32; 4],
    scaled: Vec<u8>,
    integral: Integral,
    resizer: Resizer,
    hits: Vec<Rect>,
    work: ScanWork,
}

/// The detector's work, independent of the machine: windows the cascade was run on, and
/// stumps (weak classifiers) evaluated in them. It is what a frame costs on any CPU, so a
/// time measured here carries over to another machine through its per-core speed.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct ScanWork {
    pub windows: u64,
    pub stumps: u64,
}

/// Room for the pyramid's levels (see `Detector::scales`).
pub const MAX_SCALES: usize = 1024;

type Scales = heapless::Vec<f32, MAX_SCALES>;

impl Detector {
    /// A detector scanning on up to [`MAX_SCAN_THREADS`] threads (as many as rayon's pool
    /// has).
    pub fn new(cascade: Cascade, params: DetectParams) -> Result<Self, ParamsError> {
        Self::with_threads(cascade, params, rayon::current_num_threads())
    }

    /// A detector that splits each frame's scan over `threads` (1 to [`MAX_SCAN_THREADS`]).
    pub fn with_threads(
        cascade: Cascade,
        params: DetectParams,
        threads: usize,
    ) -> Result<Self, ParamsError> {
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
        let workers = (0..threads.clamp(1, MAX_SCAN_THREADS))
            .map(|_| LevelWorker::default())
            .collect();
        Ok(Self {
            shared: Shared {
                norm_area: (inner_w * inner_h) as f64,
                cascade,
                params,
                stages,
            },
            workers,
            hits: Vec::new(),
            grouper: Grouper::default(),
            region: Vec::new(),
        })
    }

    pub fn params(&self) -> &DetectParams {
        &self.shared.params
    }

    /// Threads a frame's scan is split over.
    pub fn threads(&self) -> usize {
        self.workers.len()
    }

    /// The cascade window's larger side (24 for OpenCV's frontal-face cascade).
    pub fn window_side(&self) -> u32 {
        let cascade = &self.shared.cascade;
        cascade.window_width.max(cascade.window_height)
    }

    /// The work done since the detector was made (or since the last `take_work`).
    pub fn take_work(&mut self) -> ScanWork {
        let mut total = ScanWork::default();
        for worker in &mut self.workers {
            let work = std::mem::take(&mut worker.work);
            total.windows += work.windows;
            total.stumps += work.stumps;
        }
        total
    }

    /// Changes the scan parameters (the compiled cascade stays valid: it depends only on
    /// the integral table's stride). Callers pass validated parameters.
    pub(crate) fn set_params(&mut self, params: DetectParams) {
        self.shared.params = params;
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
        let mut groups = Vec::new();
        self.detect_groups_into(frame, &mut groups);
        groups
    }

    /// [`Detector::detect_groups`] into `groups` (cleared first); the frame path's form,
    /// which allocates nothing once the detector's buffers and `groups` have grown.
    pub fn detect_groups_into(&mut self, frame: GreyImage<'_>, groups: &mut Vec<Group>) {
        // The hits buffer is kept frame after frame (cleared, its capacity reused).
        let mut hits = std::mem::take(&mut self.hits);
        self.scan_into(frame, &mut hits);
        let min_neighbors = self.shared.params.min_neighbors;
        self.grouper
            .group_into(&hits, min_neighbors, GROUP_EPS, groups);
        self.hits = hits;
    }

    /// Every window the cascade accepts, before grouping, in original-image coordinates.
    pub fn detect_raw(&mut self, frame: GreyImage<'_>) -> Vec<Rect> {
        let mut hits = Vec::new();
        self.scan_into(frame, &mut hits);
        hits
    }

    fn scan_into(&mut self, frame: GreyImage<'_>, hits: &mut Vec<Rect>) {
        hits.clear();
        let scales = self.scales(frame.width(), frame.height());
        let runs = self.split_levels(&scales, frame.width(), frame.height());
        let workers = &mut self.workers[..runs.len()];
        scan_in_parallel(&self.shared, workers, &runs, frame);
        for worker in workers {
            hits.extend_from_slice(&worker.hits);
        }
    }

    /// The pyramid's scale factors, as OpenCV chooses them (kept as `f32`, as it does).
    /// A fixed-capacity list on the stack: with `scale_factor` ≥ 1.01 (validated) the
    /// pyramid of a frame up to 8K has at most 600 levels; [`MAX_SCALES`] leaves room.
    fn scales(&self, width: usize, height: usize) -> Scales {
        let (cascade, params) = (&self.shared.cascade, &self.shared.params);
        let (win_w, win_h) = (
            f64::from(cascade.window_width),
            f64::from(cascade.window_height),
        );
        let max_w = params.max_size.map_or(width as f64, f64::from);
        let max_h = params.max_size.map_or(height as f64, f64::from);
        let min = f64::from(params.min_size);
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
            factor *= params.scale_factor;
        }
        scales
    }

    /// Splits `scales` into at most one contiguous run per worker, of about equal work
    /// (windows), in level order.
    fn split_levels<'s>(
        &self,
        scales: &'s [f32],
        width: usize,
        height: usize,
    ) -> heapless::Vec<&'s [f32], MAX_SCAN_THREADS> {
        let cascade = &self.shared.cascade;
        let window = (
            cascade.window_width as usize,
            cascade.window_height as usize,
        );
        let cost = |&scale: &f32| level_windows(scale, (width, height), window);
        let total: usize = scales.iter().map(cost).sum();
        // Local searches are split too: measured side by side (pipeline_stages), keeping
        // them on one thread cost more wall time (6.1 vs 3.9 ms a frame) and no less CPU.
        let threads = self.workers.len().min(scales.len()).max(1);
        let mut runs = heapless::Vec::new();
        let (mut start, mut done) = (0, 0usize);
        for (index, scale) in scales.iter().enumerate() {
            let level = cost(scale);
            let due = total * (runs.len() + 1) / threads;
            if done + level >= due && runs.len() + 1 < threads {
                // End the run before or after this level, whichever is nearer its share.
                let end = if done + level - due <= due - done && index + 1 > start {
                    index + 1
                } else {
                    index
                };
                if end > start {
                    let _ = runs.push(&scales[start..end]);
                    start = end;
                }
            }
            done += level;
        }
        let _ = runs.push(&scales[start..]);
        runs
    }
}

/// Windows a level of `scale` has in a frame of `size` (OpenCV's step rule), its work.
fn level_windows(scale: f32, size: (usize, usize), window: (usize, usize)) -> usize {
    let scaled_w = (size.0 as f32 / scale).round_ties_even() as usize;
    let scaled_h = (size.1 as f32 / scale).round_ties_even() as usize;
    let step = if scale >= 2.0 { 1 } else { 2 };
    let positions = |side: usize, win: usize| side.saturating_sub(win) / step + 1;
    positions(scaled_w, window.0) * positions(scaled_h, window.1)
}

/// Scans `runs[i]` on `workers[i]`, halving the list with `rayon::join` (no heap allocation).
fn scan_in_parallel(
    shared: &Shared,
    workers: &mut [LevelWorker],
    runs: &[&[f32]],
    frame: GreyImage<'_>,
) {
    match (workers, runs) {
        ([], _) | (_, []) => {}
        ([worker, ..], [run]) | ([worker], [run, ..]) => {
            worker.hits.clear();
            for &scale in *run {
                worker.scan_scale(shared, frame, scale);
            }
        }
        (workers, runs) => {
            let middle = workers.len().min(runs.len()) / 2;
            let (left_workers, right_workers) = workers.split_at_mut(middle);
            let (left_runs, right_runs) = runs.split_at(middle);
            rayon::join(
                || scan_in_parallel(shared, left_workers, left_runs, frame),
                || scan_in_parallel(shared, right_workers, right_runs, frame),
            );
        }
    }
}

impl LevelWorker {
    fn scan_scale(&mut self, shared: &Shared, frame: GreyImage<'_>, scale: f32) {
        let scaled_w = (frame.width() as f32 / scale).round_ties_even() as usize;
        let scaled_h = (frame.height() as f32 / scale).round_ties_even() as usize;
        let (win_w, win_h) = (
            shared.cascade.window_width as usize,
            shared.cascade.window_height as usize,
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
        self.compile_for_stride(&shared.cascade, self.integral.stride);
        let step = if scale >= 2.0 { 1 } else { 2 };
        let found_w = (win_w as f32 * scale).round_ties_even() as i32;
        let found_h = (win_h as f32 * scale).round_ties_even() as i32;
        let stride = self.integral.stride;
        // OpenCV's working size: every position where the window fits.
        let (last_x, last_y) = (scaled_w - win_w, scaled_h - win_h);
        let last_stage = shared.stages.len().saturating_sub(1);
        let mut y = 0;
        while y <= last_y {
            let mut x = 0;
            while x <= last_x {
                let result = self.evaluate_window(shared, y * stride + x);
                // A window rejected by stage k evaluated the stumps of stages 0..=k.
                let reached = if result > 0 {
                    last_stage
                } else {
                    result.unsigned_abs() as usize
                };
                self.work.windows += 1;
                self.work.stumps += shared.stages.get(reached).map_or(0, |s| s.end) as u64;
                if result > 0 {
                    self.hits.push(Rect {
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
    fn compile_for_stride(&mut self, cascade: &Cascade, stride: usize) {
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
        for stage in &cascade.stages {
            for stump in &stage.stumps {
                let feature = &cascade.features[stump.feature];
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
            cascade.window_width - 2 * inset,
            cascade.window_height - 2 * inset,
        );
        self.stride = stride;
    }

    /// OpenCV's `runAt`: 1 if every stage passes, else minus the index of the failing stage
    /// (so 0 means rejected by the first stage).
    fn evaluate_window(&self, shared: &Shared, base: usize) -> i32 {
        let sum = &self.integral.sum;
        let squares = &self.integral.squares;
        let window_sum = rect_value(sum, base, &self.norm_corners) as i32;
        let window_squares = rect_value(squares, base, &self.norm_corners) as i32;
        let spread = shared.norm_area * f64::from(window_squares)
            - f64::from(window_sum) * f64::from(window_sum);
        let inverse_norm = 1.0 / if spread > 0.0 { spread.sqrt() } else { 1.0 };
        let mut start = 0;
        for (index, stage) in shared.stages.iter().enumerate() {
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
    fn a_scan_split_over_threads_finds_exactly_the_single_threaded_hits() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../tests/data/images/astronaut.png");
        let grey = crate::imageio::read_grey(&path).unwrap();
        let params = DetectParams::default();
        let single = Detector::with_threads(Cascade::frontal_face().unwrap(), params, 1)
            .unwrap()
            .detect_raw(grey.image());
        assert!(single.len() > 5, "{single:?}");
        for threads in 2..=MAX_SCAN_THREADS {
            let mut split =
                Detector::with_threads(Cascade::frontal_face().unwrap(), params, threads).unwrap();
            assert_eq!(split.threads(), threads);
            assert_eq!(split.detect_raw(grey.image()), single, "{threads} threads");
            // The work is counted once, whatever the split.
            let work = split.take_work();
            let mut one =
                Detector::with_threads(Cascade::frontal_face().unwrap(), params, 1).unwrap();
            one.detect_raw(grey.image());
            assert_eq!(work, one.take_work());
        }
    }

    #[test]
    fn levels_split_into_runs_of_about_equal_work() {
        let d =
            Detector::with_threads(Cascade::frontal_face().unwrap(), DetectParams::default(), 2)
                .unwrap();
        let scales = d.scales(640, 480);
        let runs = d.split_levels(&scales, 640, 480);
        assert_eq!(runs.len(), 2);
        assert_eq!(runs[0].len() + runs[1].len(), scales.len());
        let work = |run: &[f32]| -> usize {
            run.iter()
                .map(|&s| level_windows(s, (640, 480), (24, 24)))
                .sum()
        };
        let (a, b) = (work(runs[0]), work(runs[1]));
        // The first run ends before or after the level that crosses half the total,
        // whichever is nearer: never more than that one level off.
        let largest = scales
            .iter()
            .map(|&s| level_windows(s, (640, 480), (24, 24)))
            .max()
            .unwrap();
        assert!(a.abs_diff(b) <= largest, "{a} vs {b}");
    }

    #[test]
    fn a_flat_image_has_no_faces_and_the_first_stage_rejects_it() {
        let mut d = detector(DetectParams::default());
        let pixels = vec![128u8; 160 * 120];
        let frame = GreyImage::new(160, 120, &pixels).unwrap();
        assert!(d.detect_raw(frame).is_empty());
        let mut worker = LevelWorker::default();
        worker.integral.compute(&pixels, 160, 120);
        worker.compile_for_stride(&d.shared.cascade, worker.integral.stride);
        // Zero variance → normaliser 1, every feature 0: stage 0 sums leaves for 0 ≥ threshold.
        assert_eq!(worker.evaluate_window(&d.shared, 0), 0);
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
        let mut worker = LevelWorker {
            integral,
            ..LevelWorker::default()
        };
        worker.compile_for_stride(&d0.shared.cascade, 25);
        let result = worker.evaluate_window(&d0.shared, 0);
        let passes = expected >= f64::from(cascade.stages[0].threshold);
        assert_eq!(result != 0, passes, "stage 0 sum {expected}");
    }
}
