//! The one face preprocessing shared by training and the firmware.
//!
//! Training reads 48×48 faces from FER-2013 or crops of any size from a folder of photos; the
//! kiosk crops faces out of camera frames. All of them go through this module, so the model
//! never sees input prepared two ways: [`face_input`] grows the detected box by the margin,
//! crops it from the grey frame ([`crate::grey`], BT.601), resizes it to 48×48 (bilinear, an
//! identity on 48×48 input) and divides each grey value by 255, giving the `1×48×48` float
//! plane of the model contract; [`prepare_face_into`] is the same for an already-cropped face.

use image::{imageops, imageops::FilterType, GrayImage};

use crate::grey::{GreyImage, PrepareError};
use crate::rect::Rect;

/// Side of the square face the model takes, in pixels.
pub const FACE_SIDE: usize = 48;

/// The face box grown by `margin` of its size on every side, clipped to a `width × height`
/// frame; at least one pixel, even for a box outside the frame.
pub fn crop_box(face: Rect, margin: f32, width: usize, height: usize) -> Rect {
    let grow_x = (face.width as f32 * margin).round() as i32;
    let grow_y = (face.height as f32 * margin).round() as i32;
    let (width, height) = (clamp_i32(width), clamp_i32(height));
    let x0 = face.x.saturating_sub(grow_x).clamp(0, width - 1);
    let y0 = face.y.saturating_sub(grow_y).clamp(0, height - 1);
    let x1 = face
        .x
        .saturating_add(face.width)
        .saturating_add(grow_x)
        .min(width);
    let y1 = face
        .y
        .saturating_add(face.height)
        .saturating_add(grow_y)
        .min(height);
    Rect {
        x: x0,
        y: y0,
        width: (x1 - x0).max(1),
        height: (y1 - y0).max(1),
    }
}

fn clamp_i32(n: usize) -> i32 {
    i32::try_from(n).unwrap_or(i32::MAX).max(1)
}

/// Copies the `area` pixels (inside the frame, as [`crop_box`] returns) out of `frame`.
pub fn crop(frame: GreyImage<'_>, area: Rect) -> Vec<u8> {
    let (x0, w) = (area.x.max(0) as usize, area.width.max(0) as usize);
    let mut out = Vec::with_capacity(w * area.height.max(0) as usize);
    for y in area.y.max(0)..area.y.saturating_add(area.height) {
        let row = frame.row(y as usize);
        out.extend_from_slice(row.get(x0..x0 + w).unwrap_or(&[]));
    }
    out
}

/// The model's input for the face at `face` in `frame`: the box grown by `margin` (a
/// fraction of its size), cropped, resized to 48×48 and scaled to 0..=1 into `out`
/// (length `48*48`). The kiosk's classifier and training's photo loader both call it.
pub fn face_input(
    frame: GreyImage<'_>,
    face: Rect,
    margin: f32,
    out: &mut [f32],
) -> Result<(), PrepareError> {
    let area = crop_box(face, margin, frame.width(), frame.height());
    let pixels = crop(frame, area);
    let crop = GreyImage::new(area.width as usize, area.height as usize, &pixels)?;
    prepare_face_into(crop, out);
    Ok(())
}

/// Turns a grey face crop into the model's input plane: 48×48 values in 0..=1, row-major.
///
/// Writes into `out` (length `48*48`) so the firmware's hot loop does not allocate for
/// 48×48 input.
pub fn prepare_face_into(face: GreyImage<'_>, out: &mut [f32]) {
    debug_assert_eq!(out.len(), FACE_SIDE * FACE_SIDE);
    if face.width() == FACE_SIDE && face.height() == FACE_SIDE {
        normalise(face.pixels(), out);
        return;
    }
    let resized = resize_to_face(face);
    normalise(resized.as_raw(), out);
}

/// The 48×48 grey face that [`prepare_face`] normalises: the resize step on its own, for
/// callers that store or augment faces as bytes (the trainer's folder loader).
pub fn face_pixels(face: GreyImage<'_>) -> Vec<u8> {
    if face.width() == FACE_SIDE && face.height() == FACE_SIDE {
        return face.pixels().to_vec();
    }
    resize_to_face(face).into_raw()
}

/// Allocating form of [`prepare_face_into`].
pub fn prepare_face(face: GreyImage<'_>) -> Vec<f32> {
    let mut out = vec![0.0; FACE_SIDE * FACE_SIDE];
    prepare_face_into(face, &mut out);
    out
}

fn normalise(pixels: &[u8], out: &mut [f32]) {
    for (dst, &grey) in out.iter_mut().zip(pixels) {
        *dst = f32::from(grey) / 255.0;
    }
}

fn resize_to_face(face: GreyImage<'_>) -> GrayImage {
    let source = GrayImage::from_raw(
        face.width() as u32,
        face.height() as u32,
        face.pixels().to_vec(),
    )
    .expect("GreyImage::new checked that the buffer holds width × height values");
    // Triangle (bilinear) when enlarging; when shrinking a large crop, box-like averaging
    // avoids aliasing, which `Triangle` also does since `imageops::resize` widens its support.
    imageops::resize(
        &source,
        FACE_SIDE as u32,
        FACE_SIDE as u32,
        FilterType::Triangle,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crop_box_grows_and_clips() {
        let face = Rect {
            x: 10,
            y: 20,
            width: 100,
            height: 100,
        };
        let grown = Rect {
            x: 0,
            y: 10,
            width: 120,
            height: 120,
        };
        assert_eq!(crop_box(face, 0.1, 640, 480), grown);
        assert_eq!(crop_box(face, 0.0, 640, 480), face);
        let edge = Rect {
            x: 600,
            y: 440,
            width: 60,
            height: 60,
        };
        let clipped = crop_box(edge, 0.0, 640, 480);
        assert_eq!((clipped.width, clipped.height), (40, 40));
        // A box outside the frame still gives one pixel inside it.
        let outside = Rect {
            x: 4000,
            y: -900,
            width: i32::MAX,
            height: 10,
        };
        let area = crop_box(outside, 0.5, 640, 480);
        assert!(area.x < 640 && area.y < 480 && area.width >= 1 && area.height >= 1);
    }

    #[test]
    fn face_input_crops_the_box_rows_and_scales_them() {
        let pixels: Vec<u8> = (0..20).collect();
        let frame = GreyImage::new(5, 4, &pixels).unwrap();
        let area = Rect {
            x: 1,
            y: 2,
            width: 3,
            height: 2,
        };
        assert_eq!(crop(frame, area), vec![11, 12, 13, 16, 17, 18]);
        // A uniform frame gives a uniform 48×48 input, for a box anywhere in it.
        let flat = vec![102u8; 64 * 64];
        let frame = GreyImage::new(64, 64, &flat).unwrap();
        let mut input = vec![0.0; FACE_SIDE * FACE_SIDE];
        face_input(frame, area, 0.2, &mut input).unwrap();
        assert!(input.iter().all(|v| (v - 0.4).abs() < 1e-6));
    }

    #[test]
    fn a_48x48_face_is_scaled_to_unit_range_in_place() {
        let pixels: Vec<u8> = (0..FACE_SIDE * FACE_SIDE)
            .map(|i| (i % 256) as u8)
            .collect();
        let face = GreyImage::new(FACE_SIDE, FACE_SIDE, &pixels).unwrap();
        let input = prepare_face(face);
        assert_eq!(input[0], 0.0);
        assert_eq!(input[255], 1.0);
        assert!((input[100] - 100.0 / 255.0).abs() < 1e-7);
    }

    #[test]
    fn a_larger_uniform_crop_resizes_to_the_same_uniform_value() {
        let pixels = vec![51u8; 96 * 120];
        let face = GreyImage::new(96, 120, &pixels).unwrap();
        let input = prepare_face(face);
        assert_eq!(input.len(), FACE_SIDE * FACE_SIDE);
        assert!(input.iter().all(|v| (v - 0.2).abs() < 1e-6));
    }
}
