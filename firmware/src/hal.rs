//! The application's view of the hardware: a [`FrameSource`] for pictures and three
//! embedded-hal [`OutputPin`]s for the LEDs. The `board` crate implements them on the Pi
//! (V4L2 camera, rppal GPIO); [`SimPin`] and the file sources implement them on a laptop,
//! so the whole pipeline runs — and is tested — without a Pi.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use embedded_hal::digital::{ErrorType, OutputPin};

use crate::aggregate::Impression;

/// One captured picture, RGB 8-bit, row-major.
#[derive(Debug, Clone)]
pub struct Frame {
    pub width: usize,
    pub height: usize,
    pub rgb: Vec<u8>,
    /// Time since the source started.
    pub timestamp: Duration,
}

impl Frame {
    /// Grey values with OpenCV's weights (what the detector and the model see).
    pub fn grey(&self) -> Vec<u8> {
        self.rgb
            .chunks_exact(3)
            .map(|p| crate::imageio::rgb_to_grey(p[0], p[1], p[2]))
            .collect()
    }
}

/// Why a source stopped giving frames.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("camera {device}: {reason}")]
    Camera { device: String, reason: String },
    #[error("cannot read {path}: {reason}")]
    File { path: String, reason: String },
}

/// Anything that yields frames: a camera, a recorded clip, a folder of images.
pub trait FrameSource: Send {
    /// The next frame; `Ok(None)` at the end of a recording.
    fn next_frame(&mut self) -> Result<Option<Frame>, SourceError>;
    /// Nominal frames per second.
    fn frame_rate(&self) -> f64;
    /// True for live sources: the pipeline must keep up and drops frames rather than wait.
    fn is_live(&self) -> bool;
    fn describe(&self) -> String;
}

/// The kiosk's three LEDs, driven through embedded-hal pins.
pub struct StatusLeds<P: OutputPin> {
    good: P,
    bad: P,
    camera: P,
}

/// Faults the LEDs signal by blinking.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// No camera or it vanished: the camera LED blinks.
    NoCamera,
    /// The SD card is (nearly) full: the bad LED blinks.
    StorageFull,
}

impl<P: OutputPin> StatusLeds<P> {
    pub fn new(good: P, bad: P, camera: P) -> Self {
        Self { good, bad, camera }
    }

    /// Lights the LED of `impression`; both dark when there is none yet.
    pub fn show(&mut self, impression: Option<Impression>) -> Result<(), P::Error> {
        set(&mut self.good, impression == Some(Impression::Good))?;
        set(&mut self.bad, impression == Some(Impression::Bad))
    }

    /// The camera-on indicator: lit whenever frames are being captured.
    pub fn camera(&mut self, on: bool) -> Result<(), P::Error> {
        set(&mut self.camera, on)
    }

    /// One half-period of a fault's blink pattern (`phase` alternates on/off).
    pub fn blink(&mut self, fault: Fault, phase: bool) -> Result<(), P::Error> {
        match fault {
            Fault::NoCamera => set(&mut self.camera, phase),
            Fault::StorageFull => set(&mut self.bad, phase),
        }
    }

    /// All LEDs off (shutdown).
    pub fn off(&mut self) -> Result<(), P::Error> {
        set(&mut self.good, false)?;
        set(&mut self.bad, false)?;
        set(&mut self.camera, false)
    }
}

fn set<P: OutputPin>(pin: &mut P, high: bool) -> Result<(), P::Error> {
    if high {
        pin.set_high()
    } else {
        pin.set_low()
    }
}

/// One recorded LED change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transition {
    pub pin: &'static str,
    pub high: bool,
}

/// A simulated GPIO pin that records every change of level (not repeated writes).
#[derive(Debug, Clone)]
pub struct SimPin {
    name: &'static str,
    level: Option<bool>,
    log: Arc<Mutex<Vec<Transition>>>,
}

impl SimPin {
    pub fn new(name: &'static str, log: Arc<Mutex<Vec<Transition>>>) -> Self {
        Self {
            name,
            level: None,
            log,
        }
    }

    fn write(&mut self, high: bool) {
        if self.level != Some(high) {
            self.level = Some(high);
            if let Ok(mut log) = self.log.lock() {
                log.push(Transition {
                    pin: self.name,
                    high,
                });
            }
        }
    }
}

impl ErrorType for SimPin {
    type Error = core::convert::Infallible;
}

impl OutputPin for SimPin {
    fn set_low(&mut self) -> Result<(), Self::Error> {
        self.write(false);
        Ok(())
    }

    fn set_high(&mut self) -> Result<(), Self::Error> {
        self.write(true);
        Ok(())
    }
}

/// A simulated board: three [`SimPin`]s sharing one transition log.
pub fn simulated_leds() -> (StatusLeds<SimPin>, Arc<Mutex<Vec<Transition>>>) {
    let log = Arc::new(Mutex::new(Vec::new()));
    let leds = StatusLeds::new(
        SimPin::new("good", log.clone()),
        SimPin::new("bad", log.clone()),
        SimPin::new("camera", log.clone()),
    );
    (leds, log)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leds_follow_the_impression_and_log_only_changes() {
        let (mut leds, log) = simulated_leds();
        leds.camera(true).unwrap();
        leds.show(None).unwrap();
        leds.show(Some(Impression::Good)).unwrap();
        leds.show(Some(Impression::Good)).unwrap();
        leds.show(Some(Impression::Bad)).unwrap();
        let log = log.lock().unwrap().clone();
        let t = |pin, high| Transition { pin, high };
        assert_eq!(
            log,
            vec![
                t("camera", true),
                t("good", false),
                t("bad", false),
                t("good", true),
                t("good", false),
                t("bad", true)
            ]
        );
    }
}
