//! The kiosk's devices as the application sees them: a [`FrameSource`] for pictures and
//! three embedded-hal [`OutputPin`]s for the LEDs. The `board` crate implements them on the Pi
//! (V4L2 camera, rppal GPIO; see [`crate::board::Board`]); [`SimPin`] and the file sources
//! implement them on a laptop, so the whole pipeline runs — and is tested — without a Pi.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use embedded_hal::digital::{ErrorType, OutputPin};
use image::RgbImage;

use crate::aggregate::Impression;

/// One captured picture, RGB 8-bit, row-major, with the time it was captured.
///
/// The fields are private so that a frame always holds exactly `width × height × 3` bytes:
/// [`Frame::new`] checks it once, and everything downstream (grey conversion, the overlay,
/// the encoder) can rely on it without checking again.
#[derive(Debug, Clone)]
pub struct Frame {
    image: RgbImage,
    timestamp: Duration,
}

/// A frame buffer whose length is not `width × height × 3`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a {width}×{height} RGB frame needs {expected:?} bytes, the buffer has {got}")]
pub struct FrameSizeError {
    pub width: usize,
    pub height: usize,
    /// `None` when `width × height × 3` overflows.
    pub expected: Option<usize>,
    pub got: usize,
}

impl Frame {
    /// A frame of `width × height` pixels from `rgb` (exactly `width × height × 3` bytes),
    /// captured `timestamp` after its source started.
    pub fn new(
        width: usize,
        height: usize,
        rgb: Vec<u8>,
        timestamp: Duration,
    ) -> Result<Self, FrameSizeError> {
        let expected = width.checked_mul(height).and_then(|n| n.checked_mul(3));
        let got = rgb.len();
        let error = || FrameSizeError {
            width,
            height,
            expected,
            got,
        };
        if expected != Some(got) || width == 0 || height == 0 {
            return Err(error());
        }
        let (w, h) = (
            u32::try_from(width).map_err(|_| error())?,
            u32::try_from(height).map_err(|_| error())?,
        );
        let image = RgbImage::from_raw(w, h, rgb).ok_or_else(error)?;
        Ok(Self { image, timestamp })
    }

    /// A frame holding `image`, captured at `timestamp`.
    pub fn from_image(image: RgbImage, timestamp: Duration) -> Self {
        Self { image, timestamp }
    }

    pub fn width(&self) -> usize {
        self.image.width() as usize
    }

    pub fn height(&self) -> usize {
        self.image.height() as usize
    }

    /// Time since the source started.
    pub fn timestamp(&self) -> Duration {
        self.timestamp
    }

    /// The RGB bytes, row-major.
    pub fn rgb(&self) -> &[u8] {
        self.image.as_raw()
    }

    /// The picture, for drawing on and encoding.
    pub fn into_image(self) -> RgbImage {
        self.image
    }

    /// Grey values by the one shared formula ([`ekspresi_common::rgb_to_grey`], BT.601) —
    /// what the detector and the model see — into a reused buffer (no allocation once it
    /// has grown).
    pub fn grey_into(&self, grey: &mut Vec<u8>) {
        ekspresi_common::grey::rgb_to_grey_into(self.rgb(), grey);
    }
}

/// Why a source stopped giving frames.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("camera {device}: {reason}")]
    Camera { device: String, reason: String },
    #[error("cannot read {path}: {reason}")]
    File { path: String, reason: String },
    /// A hardware error from the board crate, passed through with its own message.
    #[error(transparent)]
    Device(Box<dyn std::error::Error + Send + Sync>),
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
    /// For a recording: when it began, if the file says so plausibly (its container's
    /// creation time), so a replayed lesson is dated by the recording, not by the replay.
    /// `None` for a camera (its lessons run on the wall clock) and for a recording that
    /// does not say.
    fn recorded_at(&self) -> Option<std::time::SystemTime> {
        None
    }
}

/// The kiosk's three LEDs, driven through embedded-hal pins.
///
/// What they show is state (impression, camera on, fault); [`StatusLeds::tick`] turns that
/// state into levels, so a fault's blink pattern never fights the impression display:
/// - good / bad: the lesson's impression so far ([`crate::aggregate::Tally::impression`],
///   the rule the summary applies); both dark while it is `insufficient`;
/// - camera: lit whenever frames are captured (a privacy promise: never blinks then);
/// - no camera: the camera LED blinks (nothing is captured), impression LEDs dark;
/// - storage full: the impression LED blinks (analysis goes on, the video has stopped).
pub struct StatusLeds<P: OutputPin> {
    good: P,
    bad: P,
    camera: P,
    impression: Impression,
    camera_on: bool,
    fault: Option<Fault>,
    blink_phase: bool,
}

/// Faults the LEDs signal by blinking.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// No camera or it vanished: the camera LED blinks.
    NoCamera,
    /// The SD card is (nearly) full: the impression LED blinks.
    StorageFull,
}

/// Half-period of a fault's blink.
pub const BLINK_HALF_PERIOD: Duration = Duration::from_millis(500);

impl<P: OutputPin> StatusLeds<P> {
    pub fn new(good: P, bad: P, camera: P) -> Self {
        Self {
            good,
            bad,
            camera,
            impression: Impression::Insufficient,
            camera_on: false,
            fault: None,
            blink_phase: true,
        }
    }

    /// Shows `impression`; both impression LEDs dark while it is insufficient.
    pub fn show(&mut self, impression: Impression) -> Result<(), P::Error> {
        self.impression = impression;
        self.render()
    }

    /// The camera-on indicator: lit whenever frames are being captured.
    pub fn camera(&mut self, on: bool) -> Result<(), P::Error> {
        self.camera_on = on;
        self.render()
    }

    /// Sets or clears the fault the LEDs signal.
    pub fn set_fault(&mut self, fault: Option<Fault>) -> Result<(), P::Error> {
        self.fault = fault;
        self.render()
    }

    pub fn fault(&self) -> Option<Fault> {
        self.fault
    }

    /// Advances a fault's blink to the phase of `elapsed` (call it often, e.g. every frame).
    pub fn tick(&mut self, elapsed: Duration) -> Result<(), P::Error> {
        self.blink_phase = (elapsed.as_millis() / BLINK_HALF_PERIOD.as_millis()).is_multiple_of(2);
        self.render()
    }

    /// All LEDs off and state cleared (shutdown).
    pub fn off(&mut self) -> Result<(), P::Error> {
        self.impression = Impression::Insufficient;
        self.camera_on = false;
        self.fault = None;
        self.render()
    }

    fn render(&mut self) -> Result<(), P::Error> {
        let (impression_lit, camera_lit) = match self.fault {
            None => (true, self.camera_on),
            Some(Fault::StorageFull) => (self.blink_phase, self.camera_on),
            Some(Fault::NoCamera) => (false, self.blink_phase),
        };
        let shown = Some(self.impression).filter(|_| impression_lit);
        set(&mut self.good, shown == Some(Impression::Good))?;
        set(&mut self.bad, shown == Some(Impression::Bad))?;
        set(&mut self.camera, camera_lit)
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
    fn a_frame_holds_exactly_width_by_height_by_three_bytes() {
        let at = Duration::from_millis(40);
        let frame = Frame::new(4, 2, vec![7; 24], at).unwrap();
        assert_eq!(
            (frame.width(), frame.height(), frame.timestamp()),
            (4, 2, at)
        );
        let mut grey = Vec::new();
        frame.grey_into(&mut grey);
        assert_eq!(grey.len(), 8);
        let short = Frame::new(4, 2, vec![0; 23], at).unwrap_err();
        assert_eq!((short.expected, short.got), (Some(24), 23));
        assert!(Frame::new(4, 2, vec![0; 25], at).is_err(), "too long");
        assert!(Frame::new(0, 0, Vec::new(), at).is_err(), "empty");
        let huge = Frame::new(usize::MAX, 2, vec![0; 6], at).unwrap_err();
        assert_eq!(huge.expected, None, "overflow is an error, not a wrap");
        assert!(Frame::new(1 << 33, 1, Vec::new(), at).is_err());
    }

    #[test]
    fn leds_follow_the_impression_and_log_only_changes() {
        let (mut leds, log) = simulated_leds();
        leds.camera(true).unwrap();
        leds.show(Impression::Insufficient).unwrap();
        leds.show(Impression::Good).unwrap();
        leds.show(Impression::Good).unwrap();
        leds.show(Impression::Bad).unwrap();
        let log = log.lock().unwrap().clone();
        let t = |pin, high| Transition { pin, high };
        assert_eq!(
            log,
            vec![
                t("good", false),
                t("bad", false),
                t("camera", true),
                t("good", true),
                t("good", false),
                t("bad", true)
            ]
        );
    }

    #[test]
    fn faults_blink_without_hiding_what_must_stay_visible() {
        let (mut leds, log) = simulated_leds();
        leds.camera(true).unwrap();
        leds.show(Impression::Bad).unwrap();
        leds.set_fault(Some(Fault::StorageFull)).unwrap();
        log.lock().unwrap().clear();
        for step in 0..4 {
            leds.tick(BLINK_HALF_PERIOD * step).unwrap();
        }
        let t = |pin, high| Transition { pin, high };
        // The bad LED blinks; the camera LED stays lit while frames are captured.
        assert_eq!(
            log.lock().unwrap().clone(),
            vec![t("bad", false), t("bad", true), t("bad", false)]
        );

        log.lock().unwrap().clear();
        leds.set_fault(Some(Fault::NoCamera)).unwrap();
        leds.tick(BLINK_HALF_PERIOD * 4).unwrap();
        leds.tick(BLINK_HALF_PERIOD * 5).unwrap();
        assert_eq!(
            log.lock().unwrap().clone(),
            vec![t("camera", false), t("camera", true), t("camera", false)]
        );
        leds.off().unwrap();
        let levels = |pin| {
            log.lock()
                .unwrap()
                .iter()
                .rev()
                .find(|t: &&Transition| t.pin == pin)
                .map(|t| t.high)
        };
        assert_eq!(levels("camera"), Some(false));
        assert_ne!(levels("bad"), Some(true));
    }
}
