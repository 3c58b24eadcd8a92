//! Reading still images (PNG, JPEG) as grey frames, greyed with the one shared formula
//! ([`ekspresi_common::rgb_to_grey`], OpenCV's) so our detections compare with
//! `detectMultiScale` run on the same file.

use std::path::Path;

use ekspresi_common::{GreyBuffer, PrepareError};

/// Why an image could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ImageReadError {
    #[error("cannot read image {path}: {source}")]
    Decode {
        path: String,
        source: image::ImageError,
    },
    #[error("image {path}: {source}")]
    Empty { path: String, source: PrepareError },
}

/// Reads a PNG or JPEG file and converts it to grey (grey files are taken as they are).
pub fn read_grey(path: &Path) -> Result<GreyBuffer, ImageReadError> {
    let shown = || path.display().to_string();
    let image = image::open(path).map_err(|source| ImageReadError::Decode {
        path: shown(),
        source,
    })?;
    let (width, height) = (image.width() as usize, image.height() as usize);
    let grey = match image {
        image::DynamicImage::ImageLuma8(grey) => GreyBuffer::new(width, height, grey.into_raw()),
        other => GreyBuffer::from_rgb(width, height, other.into_rgb8().as_raw()),
    };
    grey.map_err(|source| ImageReadError::Empty {
        path: shown(),
        source,
    })
}
