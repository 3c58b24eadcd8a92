//! Integral images (summed-area tables) of a grey image and of its squares, the two tables a
//! Haar cascade reads every rectangle sum from in four look-ups.
//!
//! Both are `(width + 1) × (height + 1)`, row-major, with a zero first row and column. Sums
//! use wrapping `u32` arithmetic, as OpenCV's 32-bit tables do: a whole-image square sum can
//! overflow, but any rectangle as small as a detection window is exact modulo 2^32, and the
//! four-corner difference recovers it.

/// Sum and squared-sum tables of one image.
#[derive(Debug, Clone, Default)]
pub struct Integral {
    pub width: usize,
    pub height: usize,
    /// Row stride of both tables (`width + 1`).
    pub stride: usize,
    pub sum: Vec<u32>,
    pub squares: Vec<u32>,
}

impl Integral {
    /// Rebuilds the tables for `pixels` (`width × height` grey values), reusing buffers.
    pub fn compute(&mut self, pixels: &[u8], width: usize, height: usize) {
        debug_assert_eq!(pixels.len(), width * height);
        let stride = width + 1;
        self.width = width;
        self.height = height;
        self.stride = stride;
        self.sum.clear();
        self.sum.resize(stride * (height + 1), 0);
        self.squares.clear();
        self.squares.resize(stride * (height + 1), 0);
        // Row by row: a running sum along the row (sequential), then the row above added
        // element-wise (independent lanes, which the compiler vectorises).
        for (y, row) in pixels.chunks_exact(width).enumerate() {
            prefix_row(&mut self.sum, &mut self.squares, row, y, stride);
        }
    }

    pub fn rect_sum(&self, x: usize, y: usize, w: usize, h: usize) -> u32 {
        corners(&self.sum, self.stride, x, y, w, h)
    }

    /// Sum of squared pixels in the rectangle at (x, y) of size w × h.
    pub fn rect_squares(&self, x: usize, y: usize, w: usize, h: usize) -> u32 {
        corners(&self.squares, self.stride, x, y, w, h)
    }
}

/// Fills table row `y + 1` from pixel row `row`: each entry is the row's running sum plus
/// the entry above it (wrapping, as OpenCV's 32-bit tables do; differences stay exact).
fn prefix_row(sum: &mut [u32], squares: &mut [u32], row: &[u8], y: usize, stride: usize) {
    let (above, here) = sum.split_at_mut((y + 1) * stride);
    let (above_sq, here_sq) = squares.split_at_mut((y + 1) * stride);
    let (above, above_sq) = (&above[y * stride..], &above_sq[y * stride..]);
    let (here, here_sq) = (&mut here[1..stride], &mut here_sq[1..stride]);
    let (mut row_sum, mut row_squares) = (0u32, 0u32);
    for ((s, q), &p) in here.iter_mut().zip(here_sq.iter_mut()).zip(row) {
        let p = u32::from(p);
        row_sum = row_sum.wrapping_add(p);
        row_squares = row_squares.wrapping_add(p * p);
        *s = row_sum;
        *q = row_squares;
    }
    for (s, &a) in here.iter_mut().zip(&above[1..stride]) {
        *s = s.wrapping_add(a);
    }
    for (q, &a) in here_sq.iter_mut().zip(&above_sq[1..stride]) {
        *q = q.wrapping_add(a);
    }
}

fn corners(table: &[u32], stride: usize, x: usize, y: usize, w: usize, h: usize) -> u32 {
    let top = y * stride + x;
    let bottom = (y + h) * stride + x;
    table[bottom + w]
        .wrapping_sub(table[bottom])
        .wrapping_sub(table[top + w])
        .wrapping_add(table[top])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hand_computed_tables() {
        // 1 2 3
        // 4 5 6
        let mut integral = Integral::default();
        integral.compute(&[1, 2, 3, 4, 5, 6], 3, 2);
        assert_eq!(integral.sum, vec![0, 0, 0, 0, 0, 1, 3, 6, 0, 5, 12, 21]);
        assert_eq!(integral.squares[11], 1 + 4 + 9 + 16 + 25 + 36);
        assert_eq!(integral.rect_sum(1, 0, 2, 2), 2 + 3 + 5 + 6);
        assert_eq!(integral.rect_squares(0, 1, 3, 1), 16 + 25 + 36);
    }

    #[test]
    fn window_sums_stay_exact_when_the_whole_table_overflows() {
        // 400×400 of 255: total of squares is 1.04e10, past u32.
        let pixels = vec![255u8; 400 * 400];
        let mut integral = Integral::default();
        integral.compute(&pixels, 400, 400);
        assert_eq!(integral.rect_squares(370, 370, 24, 24), 255 * 255 * 576);
        assert_eq!(integral.rect_sum(100, 200, 22, 22), 255 * 484);
    }
}
