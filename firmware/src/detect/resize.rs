//! Bilinear downscaling of a grey image for the detector's image pyramid.
//!
//! Follows OpenCV's `resize(..., INTER_LINEAR)` conventions so our pyramid levels match the
//! ones `detectMultiScale` scans: pixel centres aligned (`src = (dst + 0.5) · scale − 0.5`),
//! edges clamped, and 11-bit fixed-point weights with rounding, as OpenCV's 8-bit path uses.

const WEIGHT_BITS: u32 = 11;
const ONE: i32 = 1 << WEIGHT_BITS;

/// Per output coordinate: the two source indices and the weight of the second.
fn axis_taps(src_len: usize, dst_len: usize, taps: &mut Vec<(usize, usize, i32)>) {
    let scale = src_len as f64 / dst_len as f64;
    taps.clear();
    taps.extend((0..dst_len).map(|d| {
        let position = (d as f64 + 0.5) * scale - 0.5;
        let floor = position.floor();
        let mut fraction = (position - floor) as f32;
        let mut first = floor as isize;
        if first < 0 {
            first = 0;
            fraction = 0.0;
        }
        if first as usize >= src_len - 1 {
            first = src_len as isize - 1;
            fraction = 0.0;
        }
        let first = first as usize;
        let second = (first + 1).min(src_len - 1);
        let weight = (fraction * ONE as f32).round() as i32;
        (first, second, weight)
    }));
}

/// The resizer's working buffers, kept from one pyramid level (and frame) to the next so
/// that scanning a frame allocates nothing once they have grown to the frame's size.
#[derive(Debug, Default)]
pub struct Resizer {
    x_taps: Vec<(usize, usize, i32)>,
    y_taps: Vec<(usize, usize, i32)>,
    top: Vec<i32>,
    bottom: Vec<i32>,
}

impl Resizer {
    /// Resizes `src` (`src_w × src_h`) to `dst_w × dst_h` into `dst`.
    pub fn resize(
        &mut self,
        src: &[u8],
        (src_w, src_h): (usize, usize),
        dst: &mut Vec<u8>,
        (dst_w, dst_h): (usize, usize),
    ) {
        dst.clear();
        dst.resize(dst_w * dst_h, 0);
        if src_w == dst_w && src_h == dst_h {
            dst.copy_from_slice(src);
            return;
        }
        axis_taps(src_w, dst_w, &mut self.x_taps);
        axis_taps(src_h, dst_h, &mut self.y_taps);
        // Horizontal pass into i32 rows (value × ONE), then vertical, rounding once at the end.
        let x_taps = &self.x_taps;
        let horizontal = |row: usize, out: &mut Vec<i32>| {
            out.clear();
            let line = &src[row * src_w..(row + 1) * src_w];
            out.extend(
                x_taps
                    .iter()
                    .map(|&(a, b, w)| i32::from(line[a]) * (ONE - w) + i32::from(line[b]) * w),
            );
        };
        for (y, &(a, b, w)) in self.y_taps.iter().enumerate() {
            horizontal(a, &mut self.top);
            horizontal(b, &mut self.bottom);
            let out = &mut dst[y * dst_w..(y + 1) * dst_w];
            for ((o, &t), &bt) in out.iter_mut().zip(&self.top).zip(&self.bottom) {
                let value = t as i64 * i64::from(ONE - w) + bt as i64 * i64::from(w);
                let rounded = (value + (1 << (2 * WEIGHT_BITS - 1))) >> (2 * WEIGHT_BITS);
                *o = rounded.clamp(0, 255) as u8;
            }
        }
    }
}

/// Resizes `src` (`src_w × src_h`) to `dst_w × dst_h` into `dst`, with fresh buffers.
pub fn resize_bilinear(
    src: &[u8],
    src_w: usize,
    src_h: usize,
    dst: &mut Vec<u8>,
    dst_w: usize,
    dst_h: usize,
) {
    Resizer::default().resize(src, (src_w, src_h), dst, (dst_w, dst_h));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn halving_averages_pixel_pairs() {
        // Scale 2: each output samples exactly between two inputs.
        let src = [0, 100, 200, 50, 0, 100, 200, 50];
        let mut dst = Vec::new();
        resize_bilinear(&src, 4, 2, &mut dst, 2, 1);
        assert_eq!(dst, vec![50, 125]);
    }

    #[test]
    fn uniform_images_stay_uniform_and_same_size_is_a_copy() {
        let src = vec![77u8; 50 * 40];
        let mut dst = Vec::new();
        resize_bilinear(&src, 50, 40, &mut dst, 37, 29);
        assert!(dst.iter().all(|&v| v == 77));
        let ramp: Vec<u8> = (0..=255).collect();
        resize_bilinear(&ramp, 16, 16, &mut dst, 16, 16);
        assert_eq!(dst, ramp);
    }
}
