//! The `"video": "blurred"` privacy mode: before the overlay is drawn, the **whole picture**
//! is reduced to a coarse grid of averaged cells and smoothed back to full size, so nobody
//! in it can be recognised while the overlay (face box, labels, lesson panel) stays sharp.
//!
//! Why the whole picture and not the detected faces: a blur driven by the detector leaks
//! every face the detector misses — a head turned past the frontal cascade's range, the first
//! frames before a face is held, a classmate behind the student. Blurring everything needs
//! no detection to be right.

use image::imageops::{self, FilterType};
use image::RgbImage;

/// Cells across the picture. A student at the desk is 0.14–0.29 frame widths wide (see
/// `StudentRule`), so at most 3 cells: a blob without eyes or mouth. (At 16 cells a face
/// 0.3 widths wide was still found by the Haar cascade in 8 of 48 demo frames.)
pub const CELLS_ACROSS: u32 = 10;

/// Replaces `image` with its coarse, smoothed version (same size).
pub fn blur_picture(image: &mut RgbImage) {
    let (width, height) = image.dimensions();
    if width == 0 || height == 0 {
        return;
    }
    let across = CELLS_ACROSS.min(width);
    let down = (u64::from(height) * u64::from(across) / u64::from(width)).max(1);
    // `down` ≤ height because across ≤ width.
    let down = u32::try_from(down).unwrap_or(height);
    // thumbnail: integer box averaging, each cell the mean of its pixels.
    let cells = imageops::thumbnail(image, across, down);
    // Smoothed to an eighth of the size, then blown up by pixel repetition into the frame's
    // own buffer: the 8-pixel steps are invisible in a gradient this gentle. (`resize` to
    // full size took 11 ms a frame, with any filter; this takes well under one.)
    let smooth = imageops::resize(
        &cells,
        width.div_ceil(SMOOTH_STEP),
        height.div_ceil(SMOOTH_STEP),
        FilterType::Triangle,
    );
    repeat_into(&smooth, image);
}

/// Fills `image` with `small`'s pixels, each repeated over a `SMOOTH_STEP`-pixel square.
fn repeat_into(small: &RgbImage, image: &mut RgbImage) {
    let width = image.width() as usize;
    let small_width = small.width() as usize;
    let step = SMOOTH_STEP as usize;
    for (y, row) in image.chunks_exact_mut(width * 3).enumerate() {
        let source_row = (y / step).min(small.height() as usize - 1);
        let source = &small.as_raw()[source_row * small_width * 3..][..small_width * 3];
        for (x, pixel) in row.chunks_exact_mut(3).enumerate() {
            let from = (x / step).min(small_width - 1) * 3;
            pixel.copy_from_slice(&source[from..from + 3]);
        }
    }
}

/// Pixels per step of the smoothed picture.
const SMOOTH_STEP: u32 = 8;

#[cfg(test)]
mod tests {
    use super::*;
    use image::Rgb;

    #[test]
    fn a_sharp_edge_becomes_a_gradient_and_the_size_stays() {
        // Left half black, right half white: after the blur no pixel near the edge is
        // either, and the far sides keep their colour.
        let mut image = RgbImage::from_fn(640, 480, |x, _| {
            if x < 320 {
                Rgb([0, 0, 0])
            } else {
                Rgb([255, 255, 255])
            }
        });
        blur_picture(&mut image);
        assert_eq!(image.dimensions(), (640, 480));
        assert!(image.get_pixel(0, 240)[0] < 10);
        assert!(image.get_pixel(639, 240)[0] > 245);
        let near_edge = image.get_pixel(330, 240)[0];
        assert!((40..=215).contains(&near_edge), "{near_edge}");
    }

    #[test]
    fn tiny_pictures_do_not_panic() {
        for (w, h) in [(1, 1), (3, 200), (200, 3)] {
            let mut image = RgbImage::new(w, h);
            blur_picture(&mut image);
            assert_eq!(image.dimensions(), (w, h));
        }
    }
}
