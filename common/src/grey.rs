//! The one grey image type, borrowed ([`GreyImage`]) and owned ([`GreyBuffer`]), and the one
//! RGB → grey formula ([`rgb_to_grey`]), used by the camera path, the detector, still images
//! and training's folder-of-images loader alike.
//!
//! The formula is ITU-R BT.601 luma (0.299 R + 0.587 G + 0.114 B), in OpenCV's fixed point:
//! it is what OpenCV's `COLOR_RGB2GRAY` computes, so our detections compare exactly with
//! `detectMultiScale` run on the same file, and it is the weighting FER-2013's grey faces
//! were made with. (The `image` crate's `to_luma8` uses Rec. 709 weights instead; a face
//! greyed that way is a few levels off, so nothing here uses it.)

/// Why grey pixels could not be taken as an image.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PrepareError {
    #[error("face image is empty ({width}×{height})")]
    Empty { width: usize, height: usize },
    #[error("face image of {width}×{height} needs {expected:?} grey values, got {actual}")]
    WrongLength {
        width: usize,
        height: usize,
        /// `None` when `width × height` overflows.
        expected: Option<usize>,
        actual: usize,
    },
}

/// A grey image borrowed as row-major bytes (exactly `width × height` of them).
#[derive(Debug, Clone, Copy)]
pub struct GreyImage<'a> {
    width: usize,
    height: usize,
    pixels: &'a [u8],
}

impl<'a> GreyImage<'a> {
    /// Wraps `pixels` as a `width`×`height` grey image, checking the length.
    pub fn new(width: usize, height: usize, pixels: &'a [u8]) -> Result<Self, PrepareError> {
        if width == 0 || height == 0 {
            return Err(PrepareError::Empty { width, height });
        }
        let expected = width.checked_mul(height);
        if expected != Some(pixels.len()) {
            return Err(PrepareError::WrongLength {
                width,
                height,
                expected,
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

    /// All pixels, row after row.
    pub fn pixels(&self) -> &'a [u8] {
        self.pixels
    }

    /// Row `y` (empty past the last row).
    pub fn row(&self, y: usize) -> &'a [u8] {
        let start = y.saturating_mul(self.width).min(self.pixels.len());
        let end = start.saturating_add(self.width).min(self.pixels.len());
        &self.pixels[start..end]
    }
}

/// A grey image that owns its pixels.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GreyBuffer {
    width: usize,
    height: usize,
    pixels: Vec<u8>,
}

impl GreyBuffer {
    /// Takes `pixels` as a `width`×`height` grey image, checking the length.
    pub fn new(width: usize, height: usize, pixels: Vec<u8>) -> Result<Self, PrepareError> {
        GreyImage::new(width, height, &pixels)?;
        Ok(Self {
            width,
            height,
            pixels,
        })
    }

    /// Greys `rgb` (`width × height × 3` bytes, row-major) with [`rgb_to_grey`].
    pub fn from_rgb(width: usize, height: usize, rgb: &[u8]) -> Result<Self, PrepareError> {
        let pixels = rgb
            .chunks_exact(3)
            .map(|p| rgb_to_grey(p[0], p[1], p[2]))
            .collect();
        Self::new(width, height, pixels)
    }

    /// The image borrowed.
    pub fn image(&self) -> GreyImage<'_> {
        GreyImage {
            width: self.width,
            height: self.height,
            pixels: &self.pixels,
        }
    }

    pub fn width(&self) -> usize {
        self.width
    }

    pub fn height(&self) -> usize {
        self.height
    }

    pub fn into_pixels(self) -> Vec<u8> {
        self.pixels
    }
}

/// BT.601 luma in OpenCV's fixed point (`COLOR_RGB2GRAY`): 0.299 R + 0.587 G + 0.114 B,
/// rounded.
pub fn rgb_to_grey(r: u8, g: u8, b: u8) -> u8 {
    const R: u32 = 4899;
    const G: u32 = 9617;
    const B: u32 = 1868;
    ((u32::from(r) * R + u32::from(g) * G + u32::from(b) * B + (1 << 13)) >> 14) as u8
}

/// [`rgb_to_grey`] over a row-major RGB buffer, into `grey` (reused: no allocation once it
/// has grown to the frame's size).
pub fn rgb_to_grey_into(rgb: &[u8], grey: &mut Vec<u8>) {
    // Sized first, then filled by index-free zips: a loop the compiler vectorises.
    grey.resize(rgb.len() / 3, 0);
    for (out, p) in grey.iter_mut().zip(rgb.chunks_exact(3)) {
        *out = rgb_to_grey(p[0], p[1], p[2]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grey_weights_match_opencv() {
        assert_eq!(rgb_to_grey(255, 255, 255), 255);
        assert_eq!(rgb_to_grey(255, 0, 0), 76); // 0.299 · 255 = 76.2
        assert_eq!(rgb_to_grey(0, 255, 0), 150); // 0.587 · 255 = 149.7
        assert_eq!(rgb_to_grey(0, 0, 255), 29); // 0.114 · 255 = 29.1
    }

    #[test]
    fn lengths_are_checked_and_rows_are_slices() {
        let pixels: Vec<u8> = (0..12).collect();
        let image = GreyImage::new(4, 3, &pixels).unwrap();
        assert_eq!(image.row(1), &[4, 5, 6, 7]);
        assert!(image.row(3).is_empty());
        assert_eq!(
            GreyImage::new(4, 4, &pixels).unwrap_err(),
            PrepareError::WrongLength {
                width: 4,
                height: 4,
                expected: Some(16),
                actual: 12
            }
        );
        assert!(matches!(
            GreyImage::new(0, 4, &pixels),
            Err(PrepareError::Empty { .. })
        ));
        assert!(
            GreyImage::new(usize::MAX, 2, &pixels).is_err(),
            "no overflow"
        );
        let owned = GreyBuffer::from_rgb(2, 1, &[255, 0, 0, 0, 0, 255]).unwrap();
        assert_eq!(owned.image().pixels(), &[76, 29]);
    }
}
