//! Reading still images (PNG, JPEG) as grey frames, with OpenCV's grey conversion so our
//! detections compare with `detectMultiScale` run on the same file.

use std::path::Path;

/// A grey image owned as row-major bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GreyBuffer {
    pub width: usize,
    pub height: usize,
    pub pixels: Vec<u8>,
}

impl GreyBuffer {
    pub fn frame(&self) -> crate::detect::GreyFrame<'_> {
        crate::detect::GreyFrame {
            width: self.width,
            height: self.height,
            pixels: &self.pixels,
        }
    }
}

/// OpenCV's `COLOR_RGB2GRAY` in fixed point: 0.299 R + 0.587 G + 0.114 B, rounded.
pub fn rgb_to_grey(r: u8, g: u8, b: u8) -> u8 {
    const R: u32 = 4899;
    const G: u32 = 9617;
    const B: u32 = 1868;
    ((u32::from(r) * R + u32::from(g) * G + u32::from(b) * B + (1 << 13)) >> 14) as u8
}

/// Why an image could not be read.
#[derive(Debug, thiserror::Error)]
#[error("cannot read image {path}: {source}")]
pub struct ImageReadError {
    pub path: String,
    pub source: image::ImageError,
}

/// Reads a PNG or JPEG file and converts it to grey (grey files are taken as they are).
pub fn read_grey(path: &Path) -> Result<GreyBuffer, ImageReadError> {
    let image = image::open(path).map_err(|source| ImageReadError {
        path: path.display().to_string(),
        source,
    })?;
    let (width, height) = (image.width() as usize, image.height() as usize);
    let pixels = match image {
        image::DynamicImage::ImageLuma8(grey) => grey.into_raw(),
        other => other
            .into_rgb8()
            .pixels()
            .map(|p| rgb_to_grey(p[0], p[1], p[2]))
            .collect(),
    };
    Ok(GreyBuffer {
        width,
        height,
        pixels,
    })
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
}
