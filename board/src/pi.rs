//! The Raspberry Pi as the firmware's [`Board`]: frames from [`crate::source::CameraSource`]
//! (V4L2, reopening a vanished camera), LEDs from [`crate::leds`] (rppal GPIO), platform
//! facts from [`crate::platform`].

use std::path::PathBuf;

use firmware::board::{Board, BoardError};
use firmware::config::{CameraConfig, GpioConfig};
use firmware::devices::{FrameSource, SourceError, StatusLeds};

use crate::leds::PinMap;
use crate::source::CameraSource;

/// This machine's V4L2 camera and GPIO header.
pub struct PiBoard;

impl Board for PiBoard {
    type Pin = rppal::gpio::OutputPin;

    fn open_camera(&self, config: &CameraConfig) -> Result<Box<dyn FrameSource>, SourceError> {
        Ok(Box::new(CameraSource::open(config)?))
    }

    fn open_leds(&self, gpio: &GpioConfig) -> Result<StatusLeds<Self::Pin>, BoardError> {
        let pins = crate::leds::open(PinMap {
            good: gpio.good_led,
            bad: gpio.bad_led,
            camera: gpio.camera_led,
        })?;
        Ok(StatusLeds::new(pins.good, pins.bad, pins.camera))
    }

    fn describe(&self) -> String {
        let model = crate::platform::board_model().unwrap_or_else(|| "not a Raspberry Pi".into());
        let path = if crate::platform::libcamera_compat_active() {
            "camera through libcamera's V4L2 compatibility layer"
        } else {
            "camera through plain V4L2 (USB webcams; a Pi camera module needs libcamera_compat)"
        };
        format!("{model}; {path}")
    }

    fn libcamera_compat_to_load(&self) -> Result<Option<PathBuf>, BoardError> {
        if crate::platform::libcamera_compat_active() {
            return Ok(None);
        }
        crate::platform::v4l2_compat_library()
            .map(Some)
            .ok_or_else(|| {
                "camera.libcamera_compat is on but libcamera's v4l2-compat.so is not installed \
             (apt install libcamera-v4l2)"
                    .into()
            })
    }
}
