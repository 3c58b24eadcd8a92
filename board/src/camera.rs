//! A V4L2 camera through the `v4l` crate: open, negotiate a pixel format we can convert
//! (YUYV or MJPEG), set size and frame rate, stream through mmap buffers, hand out RGB.
//!
//! Raspberry Pi camera modules on Raspberry Pi OS bookworm are libcamera devices: their raw
//! V4L2 nodes give Bayer data. Started under `libcamerify` (package `libcamera-v4l2`), the
//! same code sees a normal capture device; [`crate::platform::libcamera_compat_active`] tells
//! which path we are on.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use v4l::buffer::Type;
use v4l::io::mmap::Stream;
use v4l::io::traits::CaptureStream;
use v4l::video::Capture;
use v4l::{Device, FourCC};

use crate::pixels::{mjpeg_to_rgb, yuyv_to_rgb, PixelError};

/// Pixel formats we ask the camera for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PixelFormat {
    Yuyv,
    Mjpeg,
}

impl PixelFormat {
    fn fourcc(self) -> FourCC {
        match self {
            PixelFormat::Yuyv => FourCC::new(b"YUYV"),
            PixelFormat::Mjpeg => FourCC::new(b"MJPG"),
        }
    }
}

/// Which formats to try, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FormatChoice {
    /// YUYV first (no decode cost), then MJPEG.
    Auto,
    Only(PixelFormat),
}

impl std::str::FromStr for FormatChoice {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "auto" => Ok(FormatChoice::Auto),
            "yuyv" => Ok(FormatChoice::Only(PixelFormat::Yuyv)),
            "mjpeg" => Ok(FormatChoice::Only(PixelFormat::Mjpeg)),
            other => Err(format!("unknown format `{other}` (auto, yuyv or mjpeg)")),
        }
    }
}

/// What the kiosk asks of the camera.
#[derive(Debug, Clone)]
pub struct CameraSettings {
    pub device: PathBuf,
    pub width: u32,
    pub height: u32,
    pub fps: u32,
    pub format: FormatChoice,
}

/// Camera failures, each naming the device.
#[derive(Debug, thiserror::Error)]
pub enum CameraError {
    #[error("{device}: no such camera (is it plugged in? is this the right /dev/videoN?)")]
    Missing { device: String },
    #[error("{device}: busy — another program is using the camera")]
    Busy { device: String },
    #[error("{device}: permission denied (the kiosk user must be in the `video` group)")]
    Permission { device: String },
    #[error("{device}: offers none of {wanted} (it offers {offered}); a Pi camera module needs libcamera's V4L2 compatibility layer (camera.libcamera_compat)")]
    NoUsableFormat {
        device: String,
        wanted: String,
        offered: String,
    },
    #[error("{device}: {action}: {source}")]
    Io {
        device: String,
        action: &'static str,
        source: std::io::Error,
    },
    #[error("{device}: bad frame: {source}")]
    Pixels { device: String, source: PixelError },
}

/// An open, streaming camera.
pub struct Camera {
    device_path: String,
    stream: Stream<'static>,
    format: PixelFormat,
    width: usize,
    height: usize,
    stride: usize,
    fps: f64,
    started: Instant,
    rgb: Vec<u8>,
}

/// One converted frame; `rgb` is borrowed from the camera until the next capture.
pub struct CapturedFrame<'a> {
    pub width: usize,
    pub height: usize,
    pub rgb: &'a [u8],
    pub timestamp: Duration,
}

impl Camera {
    /// Opens the device, negotiates format, size and rate, and starts streaming.
    pub fn open(settings: &CameraSettings) -> Result<Self, CameraError> {
        let device_path = settings.device.display().to_string();
        let device = open_device(&settings.device)?;
        let io = |action: &'static str| {
            let device = device_path.clone();
            move |source| CameraError::Io {
                device,
                action,
                source,
            }
        };
        let (format, negotiated) = negotiate(&device, &device_path, settings)?;
        let params = device
            .set_params(&v4l::video::capture::Parameters::with_fps(settings.fps))
            .map_err(io("setting the frame rate"))?;
        let fps = if params.interval.numerator > 0 {
            f64::from(params.interval.denominator) / f64::from(params.interval.numerator)
        } else {
            f64::from(settings.fps)
        };
        let mut stream =
            Stream::with_buffers(&device, Type::VideoCapture, 4).map_err(io("mapping buffers"))?;
        stream.set_timeout(Duration::from_secs(5));
        tracing::info!(device = %device_path, ?format, width = negotiated.width, height = negotiated.height, fps, "camera streaming");
        Ok(Self {
            device_path,
            stream,
            format,
            width: negotiated.width as usize,
            height: negotiated.height as usize,
            stride: negotiated.stride as usize,
            fps,
            started: Instant::now(),
            rgb: Vec::new(),
        })
    }

    /// Waits for the next frame and converts it to RGB.
    pub fn capture(&mut self) -> Result<CapturedFrame<'_>, CameraError> {
        let (buffer, meta) = self.stream.next().map_err(|source| CameraError::Io {
            device: self.device_path.clone(),
            action: "capturing a frame (did the camera vanish?)",
            source,
        })?;
        let used = (meta.bytesused as usize).min(buffer.len());
        let data = if used > 0 { &buffer[..used] } else { buffer };
        let converted = match self.format {
            PixelFormat::Yuyv => {
                yuyv_to_rgb(data, self.width, self.height, self.stride, &mut self.rgb)
            }
            PixelFormat::Mjpeg => mjpeg_to_rgb(data, self.width, self.height, &mut self.rgb),
        };
        converted.map_err(|source| CameraError::Pixels {
            device: self.device_path.clone(),
            source,
        })?;
        Ok(CapturedFrame {
            width: self.width,
            height: self.height,
            rgb: &self.rgb,
            timestamp: self.started.elapsed(),
        })
    }

    pub fn frame_rate(&self) -> f64 {
        self.fps
    }

    pub fn describe(&self) -> String {
        format!(
            "camera {} ({:?} {}×{} @ {:.1} fps)",
            self.device_path, self.format, self.width, self.height, self.fps
        )
    }
}

fn open_device(path: &Path) -> Result<Device, CameraError> {
    let device = path.display().to_string();
    Device::with_path(path).map_err(|source| match source.kind() {
        std::io::ErrorKind::NotFound => CameraError::Missing { device },
        std::io::ErrorKind::PermissionDenied => CameraError::Permission { device },
        _ if source.raw_os_error() == Some(16) => CameraError::Busy { device },
        _ => CameraError::Io {
            device,
            action: "opening",
            source,
        },
    })
}

fn negotiate(
    device: &Device,
    device_path: &str,
    settings: &CameraSettings,
) -> Result<(PixelFormat, v4l::Format), CameraError> {
    let offered: Vec<FourCC> = device
        .enum_formats()
        .map_err(|source| CameraError::Io {
            device: device_path.into(),
            action: "listing formats",
            source,
        })?
        .into_iter()
        .map(|d| d.fourcc)
        .collect();
    let wanted: &[PixelFormat] = match settings.format {
        FormatChoice::Auto => &[PixelFormat::Yuyv, PixelFormat::Mjpeg],
        FormatChoice::Only(ref one) => std::slice::from_ref(one),
    };
    let Some(&format) = wanted.iter().find(|f| offered.contains(&f.fourcc())) else {
        return Err(CameraError::NoUsableFormat {
            device: device_path.into(),
            wanted: wanted
                .iter()
                .map(|f| format!("{f:?}"))
                .collect::<Vec<_>>()
                .join(", "),
            offered: offered
                .iter()
                .map(|f| f.to_string())
                .collect::<Vec<_>>()
                .join(", "),
        });
    };
    let request = v4l::Format::new(settings.width, settings.height, format.fourcc());
    let negotiated = device
        .set_format(&request)
        .map_err(|source| CameraError::Io {
            device: device_path.into(),
            action: "setting the format",
            source,
        })?;
    if negotiated.fourcc != format.fourcc() {
        return Err(CameraError::NoUsableFormat {
            device: device_path.into(),
            wanted: format!("{format:?}"),
            offered: negotiated.fourcc.to_string(),
        });
    }
    Ok((format, negotiated))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_device_is_a_clear_error() {
        let settings = CameraSettings {
            device: "/dev/video-ekspresi-missing".into(),
            width: 640,
            height: 480,
            fps: 10,
            format: FormatChoice::Auto,
        };
        let error = Camera::open(&settings).err().expect("no such device");
        assert!(matches!(error, CameraError::Missing { .. }), "{error}");
        assert!(error.to_string().contains("no such camera"), "{error}");
    }

    #[test]
    fn a_file_that_is_not_a_camera_is_an_error_not_a_panic() {
        let settings = CameraSettings {
            device: "/dev/null".into(),
            width: 640,
            height: 480,
            fps: 10,
            format: FormatChoice::Auto,
        };
        assert!(Camera::open(&settings).is_err());
    }

    #[test]
    fn format_names_parse() {
        assert_eq!("auto".parse::<FormatChoice>(), Ok(FormatChoice::Auto));
        assert_eq!(
            "mjpeg".parse::<FormatChoice>(),
            Ok(FormatChoice::Only(PixelFormat::Mjpeg))
        );
        assert!("h264".parse::<FormatChoice>().is_err());
    }
}
