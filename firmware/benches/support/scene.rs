//! One frame of a synthetic scene: a still photo scaled to a zoom (1 = its height fills the
//! frame) and panned horizontally on a flat grey canvas. Shared by the demo clip's recipe
//! (`examples/make_demo_clip.rs`) and the benches' clip (`support/clip.rs`), so both move a
//! face through the frame the same way.

use image::{imageops, RgbImage};

/// The still at `zoom`, its centre `pan` pixels right of the canvas's, on a `size` canvas.
pub fn compose(still: &RgbImage, size: (u32, u32), zoom: f32, pan: f32) -> RgbImage {
    let height = (size.1 as f32 * zoom).round() as u32;
    let width = (still.width() as f32 * height as f32 / still.height() as f32).round() as u32;
    let scaled = imageops::resize(still, width, height, imageops::FilterType::Triangle);
    let mut canvas = RgbImage::from_pixel(size.0, size.1, image::Rgb([70, 70, 75]));
    let x = (size.0 as f32 / 2.0 - width as f32 / 2.0 + pan).round() as i64;
    let y = (i64::from(size.1) - i64::from(height)) / 2;
    imageops::overlay(&mut canvas, &scaled, x, y);
    canvas
}
