//! The live camera as the firmware's [`FrameSource`]: wraps [`crate::camera`] and reopens it when it
//! vanishes (a USB cable pulled, the driver reset), so a lesson survives a short outage.
//! After `reopen_attempts` failures in a row the source gives up with the last error, and
//! the kiosk ends the lesson with intact files.

use std::time::{Duration, Instant};

use firmware::config::CameraConfig;
use firmware::devices::{Frame, FrameSource, SourceError};

use crate::camera::{Camera, CameraSettings, FormatChoice};

/// A V4L2 camera that reopens itself.
pub struct CameraSource {
    settings: CameraSettings,
    camera: Option<Camera>,
    reopen_attempts: u32,
    retry_delay: Duration,
    started: Instant,
}

impl CameraSource {
    /// Opens the camera now, so a missing or busy device is reported at start.
    pub fn open(config: &CameraConfig) -> Result<Self, SourceError> {
        let format: FormatChoice = config
            .format
            .parse()
            .map_err(|reason| SourceError::Camera {
                device: config.device.display().to_string(),
                reason,
            })?;
        let settings = CameraSettings {
            device: config.device.clone(),
            width: config.width,
            height: config.height,
            fps: config.fps,
            format,
        };
        let camera = Camera::open(&settings).map_err(|e| SourceError::Device(e.into()))?;
        Ok(Self {
            settings,
            camera: Some(camera),
            reopen_attempts: 10,
            retry_delay: Duration::from_secs(1),
            started: Instant::now(),
        })
    }

    fn capture(&mut self) -> Result<Frame, SourceError> {
        let mut last_error = None;
        for attempt in 0..=self.reopen_attempts {
            if self.camera.is_none() {
                if attempt > 0 {
                    std::thread::sleep(self.retry_delay);
                }
                match Camera::open(&self.settings) {
                    Ok(camera) => self.camera = Some(camera),
                    Err(error) => {
                        tracing::warn!(%error, attempt, "camera did not reopen");
                        last_error = Some(error);
                        continue;
                    }
                }
            }
            let Some(camera) = self.camera.as_mut() else {
                continue;
            };
            match camera.capture() {
                Ok(captured) => {
                    return Frame::new(
                        captured.width,
                        captured.height,
                        captured.rgb.to_vec(),
                        self.started.elapsed(),
                    )
                    .map_err(|e| SourceError::Camera {
                        device: self.settings.device.display().to_string(),
                        reason: e.to_string(),
                    })
                }
                Err(error) => {
                    tracing::warn!(%error, "camera lost; reopening");
                    self.camera = None;
                    last_error = Some(error);
                }
            }
        }
        let reason = last_error.map_or_else(|| "no frame".to_owned(), |e| e.to_string());
        Err(SourceError::Camera {
            device: self.settings.device.display().to_string(),
            reason: format!(
                "gave up after {} reopen attempts: {reason}",
                self.reopen_attempts
            ),
        })
    }
}

impl FrameSource for CameraSource {
    fn next_frame(&mut self) -> Result<Option<Frame>, SourceError> {
        self.capture().map(Some)
    }

    fn frame_rate(&self) -> f64 {
        self.camera
            .as_ref()
            .map_or(f64::from(self.settings.fps), Camera::frame_rate)
    }

    fn is_live(&self) -> bool {
        true
    }

    fn describe(&self) -> String {
        self.camera.as_ref().map_or_else(
            || format!("camera {} (reopening)", self.settings.device.display()),
            Camera::describe,
        )
    }
}
