//! The one preprocessing function shared by training and the firmware.
//!
//! Training reads 48×48 faces from FER-2013; the kiosk crops faces of any size out of camera
//! frames. Both go through [`prepare_face`], so the model never sees input prepared two
//! different ways: a grey crop is resized to 48×48 (bilinear, an identity on 48×48 input) and
//! each grey value is divided by 255, giving the `1×48×48` float plane of the model contract.

use image::{imageops, imageops::FilterType, GrayImage};

/// Side of the square face the model takes, in pixels.
pub const FACE_SIDE: usize = 48;

/// A grey image borrowed as row-major bytes.
#[derive(Debug, Clone, Copy)]
pub struct GreyImage<'a> {
    width: usize,
    height: usize,
    pixels: &'a [u8],
}

/// Why a face could not be prepared.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PrepareError {
    #[error("face image is empty ({width}×{height})")]
    Empty { width: usize, height: usize },
    #[error("face image of {width}×{height} needs {expected} grey values, got {actual}")]
    WrongLength {
        width: usize,
        height: usize,
        expected: usize,
        actual: usize,
    },
}

impl<'a> GreyImage<'a> {
    /// Wraps `pixels` as a `width`×`height` grey image, checking the length.
    pub fn new(width: usize, height: usize, pixels: &'a [u8]) -> Result<Self, PrepareError> {
        if width == 0 || height == 0 {
            return Err(PrepareError::Empty { width, height });
        }
        if pixels.len() != width * height {
            return Err(PrepareError::WrongLength {
                width,
                height,
                expected: width * height,
                actual: pixels.len(),
            });
        }
        Ok(Self {
            width,
            height,
            pixels,
        })
    }

    pub fn width(&self) -> usize {
        self.width
    }

    pub fn height(&self) -> usize {
        self.height
    }

    pub fn pixels(&self) -> &'a [u8] {
        self.pixels
    }
}

/// Turns a grey face crop into the model's input plane: 48×48 values in 0..=1, row-major.
///
/// Writes into `out` (length `48*48`) so the firmware's hot loop does not allocate for
/// 48×48 input.
pub fn prepare_face_into(face: GreyImage<'_>, out: &mut [f32]) {
    debug_assert_eq!(out.len(), FACE_SIDE * FACE_SIDE);
    if face.width == FACE_SIDE && face.height == FACE_SIDE {
        normalise(face.pixels, out);
        return;
    }
    let resized = resize_to_face(face);
    normalise(resized.as_raw(), out);
}

/// The 48×48 grey face that [`prepare_face`] normalises: the resize step on its own, for
/// callers that store or augment faces as bytes (the trainer's folder loader).
pub fn face_pixels(face: GreyImage<'_>) -> Vec<u8> {
    if face.width == FACE_SIDE && face.height == FACE_SIDE {
        return face.pixels.to_vec();
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
    let source = GrayImage::from_raw(face.width as u32, face.height as u32, face.pixels.to_vec())
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

    #[test]
    fn a_short_buffer_is_rejected() {
        let pixels = vec![0u8; 10];
        assert_eq!(
            GreyImage::new(4, 4, &pixels).unwrap_err(),
            PrepareError::WrongLength {
                width: 4,
                height: 4,
                expected: 16,
                actual: 10
            }
        );
        assert!(matches!(
            GreyImage::new(0, 4, &pixels),
            Err(PrepareError::Empty { .. })
        ));
    }
}
