//! Board support for the Ekspresi kiosk: the only crate that touches hardware.
//!
//! - [`camera`]: a V4L2 camera (USB/UVC webcams directly, the Pi camera module through
//!   libcamera's V4L2 compatibility layer), negotiating YUYV or MJPEG and handing out RGB.
//! - [`pixels`]: the pixel-format conversions the camera needs (pure functions, tested on
//!   any machine).
//! - [`leds`]: the three status LEDs on GPIO via `rppal`, as embedded-hal `OutputPin`s.
//! - [`platform`]: facts about the machine we run on, for the kiosk's self-test.
//! - [`source`]: the camera as the firmware's frame source, reopening when it vanishes.
//! - [`pi`]: all of that as the firmware's `Board`, which the `kiosk` binary (src/main.rs)
//!   hands to the firmware's command line.
//!
//! The application (`firmware`) has no dependency on this crate, `v4l` or `rppal`; this
//! crate depends on it and implements its traits, so the application also runs on a laptop.

pub mod camera;
pub mod leds;
pub mod pi;
pub mod pixels;
pub mod platform;
pub mod source;
