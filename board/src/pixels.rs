//! Pixel-format conversion from what V4L2 cameras deliver to packed RGB.
//!
//! YUYV (YUV 4:2:2) is converted with the BT.601 limited-range matrix that UVC webcams and
//! libcamera's compatibility layer use; MJPEG frames are decoded with the `image` crate's
//! JPEG decoder. Both write into a caller-owned buffer so the capture loop does not allocate.

/// Why a captured buffer could not be turned into RGB.
#[derive(Debug, thiserror::Error)]
pub enum PixelError {
    #[error("YUYV buffer of {got} bytes is too short for {width}×{height} (needs {needed})")]
    ShortYuyv {
        width: usize,
        height: usize,
        got: usize,
        needed: usize,
    },
    #[error("MJPEG frame does not decode: {0}")]
    Jpeg(String),
    #[error("MJPEG frame is {got_width}×{got_height}, the camera said {width}×{height}")]
    JpegSize {
        width: usize,
        height: usize,
        got_width: usize,
        got_height: usize,
    },
}

/// Converts one YUYV frame (`stride` bytes per row, ≥ 2 × width) into `rgb` (3 × w × h).
pub fn yuyv_to_rgb(
    yuyv: &[u8],
    width: usize,
    height: usize,
    stride: usize,
    rgb: &mut Vec<u8>,
) -> Result<(), PixelError> {
    let stride = stride.max(width * 2);
    let needed = stride * height.saturating_sub(1) + width * 2;
    if height == 0 || yuyv.len() < needed {
        return Err(PixelError::ShortYuyv {
            width,
            height,
            got: yuyv.len(),
            needed,
        });
    }
    rgb.clear();
    rgb.reserve(width * height * 3);
    for row in yuyv.chunks(stride).take(height) {
        for quad in row[..width * 2].chunks_exact(4) {
            let (y0, u, y1, v) = (quad[0], quad[1], quad[2], quad[3]);
            rgb.extend_from_slice(&ycbcr_to_rgb(y0, u, v));
            rgb.extend_from_slice(&ycbcr_to_rgb(y1, u, v));
        }
    }
    Ok(())
}

/// BT.601 limited range (Y 16..235, Cb/Cr 16..240) to full-range RGB, in fixed point.
pub fn ycbcr_to_rgb(y: u8, cb: u8, cr: u8) -> [u8; 3] {
    let c = (i32::from(y) - 16) * 298;
    let d = i32::from(cb) - 128;
    let e = i32::from(cr) - 128;
    let clamp = |v: i32| ((v + 128) >> 8).clamp(0, 255) as u8;
    [
        clamp(c + 409 * e),
        clamp(c - 100 * d - 208 * e),
        clamp(c + 516 * d),
    ]
}

/// Decodes one MJPEG frame into `rgb`, checking it has the negotiated size.
pub fn mjpeg_to_rgb(
    jpeg: &[u8],
    width: usize,
    height: usize,
    rgb: &mut Vec<u8>,
) -> Result<(), PixelError> {
    let decoded = image::load_from_memory_with_format(jpeg, image::ImageFormat::Jpeg)
        .map_err(|e| PixelError::Jpeg(e.to_string()))?
        .into_rgb8();
    let (got_width, got_height) = (decoded.width() as usize, decoded.height() as usize);
    if (got_width, got_height) != (width, height) {
        return Err(PixelError::JpegSize {
            width,
            height,
            got_width,
            got_height,
        });
    }
    rgb.clear();
    rgb.extend_from_slice(decoded.as_raw());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limited_range_black_white_and_primaries() {
        assert_eq!(ycbcr_to_rgb(16, 128, 128), [0, 0, 0]);
        assert_eq!(ycbcr_to_rgb(235, 128, 128), [255, 255, 255]);
        // BT.601 red: Y 81, Cb 90, Cr 240.
        let red = ycbcr_to_rgb(81, 90, 240);
        assert!(red[0] >= 253 && red[1] <= 2 && red[2] <= 2, "{red:?}");
        // BT.601 blue: Y 41, Cb 240, Cr 110.
        let blue = ycbcr_to_rgb(41, 240, 110);
        assert!(blue[0] <= 2 && blue[1] <= 2 && blue[2] >= 253, "{blue:?}");
    }

    #[test]
    fn yuyv_pairs_share_chroma_and_honour_stride() {
        // 2×2 frame, stride 6 (2 padding bytes per row).
        let yuyv = [
            16, 128, 235, 128, 0, 0, //
            235, 128, 16, 128, 9, 9,
        ];
        let mut rgb = Vec::new();
        yuyv_to_rgb(&yuyv, 2, 2, 6, &mut rgb).unwrap();
        assert_eq!(rgb, [0, 0, 0, 255, 255, 255, 255, 255, 255, 0, 0, 0]);
    }

    #[test]
    fn short_yuyv_is_an_error_not_a_panic() {
        let mut rgb = Vec::new();
        let error = yuyv_to_rgb(&[0; 10], 4, 4, 8, &mut rgb).unwrap_err();
        assert!(error.to_string().contains("too short"), "{error}");
    }

    #[test]
    fn mjpeg_round_trip_and_size_check() {
        let mut jpeg = Vec::new();
        let picture = image::RgbImage::from_pixel(16, 8, image::Rgb([200, 40, 40]));
        picture
            .write_to(
                &mut std::io::Cursor::new(&mut jpeg),
                image::ImageFormat::Jpeg,
            )
            .unwrap();
        let mut rgb = Vec::new();
        mjpeg_to_rgb(&jpeg, 16, 8, &mut rgb).unwrap();
        assert_eq!(rgb.len(), 16 * 8 * 3);
        assert!(rgb[0] > 180 && rgb[1] < 70, "{:?}", &rgb[..3]);
        let error = mjpeg_to_rgb(&jpeg, 32, 8, &mut rgb).unwrap_err();
        assert!(error.to_string().contains("camera said 32×8"), "{error}");
        assert!(mjpeg_to_rgb(&jpeg[..40], 16, 8, &mut rgb).is_err());
    }
}
