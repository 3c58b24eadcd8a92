//! Text for the overlay, drawn from a cache of rasterised glyphs.
//!
//! imageproc's `draw_text_mut` outlines and rasterises every glyph of every string on every
//! frame (about 450 heap allocations a frame for the overlay's ~120 characters). The overlay
//! draws the same few dozen characters at two sizes all lesson long, so each (glyph, size)
//! is rasterised once, on first use, into a coverage bitmap, and later frames only blend
//! those bitmaps: no allocation once every character has been seen. Layout follows
//! `draw_text_mut` (advance, then kerning, glyph origin on the font's ascent), except that
//! each glyph is rasterised at a whole-pixel origin, so an edge may differ from imageproc's
//! by its sub-pixel shift.

use std::collections::HashMap;

use ab_glyph::{point, Font, FontRef, GlyphId, PxScale, ScaleFont};
use image::{Rgb, RgbImage};

/// One glyph at one size, as coverage (0–255) in rows of `width`, the box's top-left
/// corner at `(left, top)` from the pen position at the text's top-left.
struct Bitmap {
    left: i32,
    top: i32,
    width: usize,
    coverage: Vec<u8>,
}

/// Rasterised glyphs of one font, keyed by glyph and pixel size.
pub struct GlyphCache {
    font: FontRef<'static>,
    bitmaps: HashMap<(GlyphId, u32), Option<Bitmap>>,
}

impl GlyphCache {
    pub fn new(font: FontRef<'static>) -> Self {
        Self {
            font,
            bitmaps: HashMap::new(),
        }
    }

    /// Draws `text` in `colour` with its top-left corner at `(x, y)`, `size` pixels high.
    pub fn draw(
        &mut self,
        frame: &mut RgbImage,
        colour: Rgb<u8>,
        x: i32,
        y: i32,
        size: f32,
        text: &str,
    ) {
        let scale = PxScale::from(size);
        let mut pen = 0.0f32;
        let mut last: Option<GlyphId> = None;
        for c in text.chars() {
            let scaled = self.font.as_scaled(scale);
            let id = scaled.glyph_id(c);
            let advance = scaled.h_advance(id);
            let kern = last.map_or(0.0, |last| scaled.kern(id, last));
            let origin = pen;
            pen += advance;
            let Some(bitmap) = self.bitmap(id, scale) else {
                continue; // a space: nothing to draw, no kerning (as imageproc)
            };
            pen += kern;
            last = Some(id);
            blend(frame, bitmap, colour, x + origin.round() as i32, y);
        }
    }

    fn bitmap(&mut self, id: GlyphId, scale: PxScale) -> Option<&Bitmap> {
        let font = &self.font;
        self.bitmaps
            .entry((id, scale.y.to_bits()))
            .or_insert_with(|| rasterise(font, id, scale))
            .as_ref()
    }
}

/// The glyph's coverage at a whole-pixel origin on the ascent line; `None` when it has no
/// outline (a space).
fn rasterise(font: &FontRef<'static>, id: GlyphId, scale: PxScale) -> Option<Bitmap> {
    let ascent = font.as_scaled(scale).ascent();
    let outlined = font.outline_glyph(id.with_scale_and_position(scale, point(0.0, ascent)))?;
    let bounds = outlined.px_bounds();
    let (width, height) = (bounds.width() as usize, bounds.height() as usize);
    let mut coverage = vec![0u8; width * height];
    outlined.draw(|gx, gy, value| {
        if let Some(cell) = coverage.get_mut(gy as usize * width + gx as usize) {
            *cell = (value.clamp(0.0, 1.0) * 255.0).round() as u8;
        }
    });
    Some(Bitmap {
        left: bounds.min.x.round() as i32,
        top: bounds.min.y.round() as i32,
        width,
        coverage,
    })
}

/// Blends `colour` into `frame` by `bitmap`'s coverage, pen at `(x, y)`; clipped to the frame.
fn blend(frame: &mut RgbImage, bitmap: &Bitmap, colour: Rgb<u8>, x: i32, y: i32) {
    let (frame_width, frame_height) = (frame.width() as i32, frame.height() as i32);
    for (row, coverage_row) in bitmap
        .coverage
        .chunks_exact(bitmap.width.max(1))
        .enumerate()
    {
        let image_y = y + bitmap.top + row as i32;
        if !(0..frame_height).contains(&image_y) {
            continue;
        }
        for (column, &coverage) in coverage_row.iter().enumerate() {
            let image_x = x + bitmap.left + column as i32;
            if coverage == 0 || !(0..frame_width).contains(&image_x) {
                continue;
            }
            let alpha = u16::from(coverage);
            let pixel = frame.get_pixel_mut(image_x as u32, image_y as u32);
            for (channel, &ink) in pixel.0.iter_mut().zip(&colour.0) {
                let mixed = u16::from(*channel) * (255 - alpha) + u16::from(ink) * alpha;
                *channel = ((mixed + 127) / 255) as u8;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use imageproc::drawing::draw_text_mut;

    fn font() -> FontRef<'static> {
        FontRef::try_from_slice(ekspresi_common::font::DEJAVU_SANS).expect("embedded font")
    }

    fn canvas() -> RgbImage {
        RgbImage::from_pixel(220, 40, Rgb([20, 20, 20]))
    }

    /// Pixels whose channels differ by more than `tolerance` between two images.
    fn differing(a: &RgbImage, b: &RgbImage, tolerance: u8) -> usize {
        a.pixels()
            .zip(b.pixels())
            .filter(|(p, q)| {
                p.0.iter()
                    .zip(&q.0)
                    .any(|(x, y)| x.abs_diff(*y) > tolerance)
            })
            .count()
    }

    #[test]
    fn cached_text_matches_imageproc_but_for_sub_pixel_edges() {
        let text = "now: surprise 62%";
        let mut ours = canvas();
        GlyphCache::new(font()).draw(&mut ours, Rgb([255, 255, 255]), 4, 2, 17.0, text);
        let mut theirs = canvas();
        draw_text_mut(
            &mut theirs,
            Rgb([255, 255, 255]),
            4,
            2,
            PxScale::from(17.0),
            &font(),
            text,
        );
        let inked = differing(&theirs, &canvas(), 0);
        assert!(inked > 300, "imageproc drew only {inked} pixels");
        // Same glyphs at the same places; only anti-aliased edges move by under a pixel.
        let off = differing(&ours, &theirs, 96);
        assert!(off * 10 < inked, "{off} of {inked} inked pixels differ");
    }

    #[test]
    fn text_clipped_at_the_frame_edges_does_not_panic() {
        let mut cache = GlyphCache::new(font());
        let mut frame = canvas();
        for (x, y) in [(-30, -10), (200, 30), (-5, 35), (219, -3)] {
            cache.draw(&mut frame, Rgb([255, 0, 0]), x, y, 17.0, "lesson: good");
        }
        assert!(frame.pixels().any(|p| p.0[0] > 100 && p.0[1] < 80));
    }

    #[test]
    fn each_glyph_is_rasterised_once_per_size() {
        let mut cache = GlyphCache::new(font());
        let mut frame = canvas();
        cache.draw(&mut frame, Rgb([255, 255, 255]), 0, 0, 12.0, "happy 50%");
        let after_first = cache.bitmaps.len();
        cache.draw(&mut frame, Rgb([255, 255, 255]), 0, 20, 12.0, "happy 05%");
        assert_eq!(cache.bitmaps.len(), after_first);
        cache.draw(&mut frame, Rgb([255, 255, 255]), 0, 20, 17.0, "h");
        assert_eq!(cache.bitmaps.len(), after_first + 1);
    }
}
