//! What the application needs from the machine it runs on, as one small trait: open the
//! camera, claim the LED pins, and say what platform this is. The `board` crate implements
//! it on the Raspberry Pi (V4L2, rppal GPIO); [`NoBoard`] is a laptop or a build machine,
//! where the demo, replay, detect and classify commands need nothing more.
//!
//! The firmware library depends on no hardware crate (no `v4l`, `bindgen` or `rppal`), so it
//! builds anywhere; the `kiosk` binary in `board` composes the two.

use std::path::PathBuf;

use embedded_hal::digital::OutputPin;

use crate::config::{CameraConfig, GpioConfig};
use crate::devices::{FrameSource, SourceError, StatusLeds};

/// A hardware failure the board reports, with its own error type behind it.
pub type BoardError = Box<dyn std::error::Error + Send + Sync>;

/// The hardware of one kind of kiosk.
pub trait Board {
    /// The LED pin type (an embedded-hal output pin whose errors can be reported).
    type Pin: OutputPin<Error: std::error::Error + Send + Sync + 'static> + Send + 'static;

    /// Opens the live camera; a missing or busy device is an error now, not at the first frame.
    fn open_camera(&self, config: &CameraConfig) -> Result<Box<dyn FrameSource>, SourceError>;

    /// Claims the three LED pins.
    fn open_leds(&self, gpio: &GpioConfig) -> Result<StatusLeds<Self::Pin>, BoardError>;

    /// The board's model and the camera path in use, for `kiosk check`.
    fn describe(&self) -> String;

    /// libcamera's V4L2 compatibility library when it is not yet loaded into this process
    /// (the CLI then re-executes itself with it preloaded); `None` when it is loaded or this
    /// board has no such layer; an error when it is needed but not installed.
    fn libcamera_compat_to_load(&self) -> Result<Option<PathBuf>, BoardError>;
}

/// No hardware: every hardware request is a clear error naming the binary that has it.
pub struct NoBoard;

const NO_HARDWARE: &str = "this `ekspresi` build has no camera or GPIO support; on the Pi use \
                           the `kiosk` binary (board crate)";

impl Board for NoBoard {
    type Pin = crate::devices::SimPin;

    fn open_camera(&self, config: &CameraConfig) -> Result<Box<dyn FrameSource>, SourceError> {
        Err(SourceError::Camera {
            device: config.device.display().to_string(),
            reason: NO_HARDWARE.into(),
        })
    }

    fn open_leds(&self, _gpio: &GpioConfig) -> Result<StatusLeds<Self::Pin>, BoardError> {
        Err(NO_HARDWARE.into())
    }

    fn describe(&self) -> String {
        "no board support in this build".into()
    }

    fn libcamera_compat_to_load(&self) -> Result<Option<PathBuf>, BoardError> {
        // Nothing to preload: opening the camera fails with NO_HARDWARE instead.
        Ok(None)
    }
}
