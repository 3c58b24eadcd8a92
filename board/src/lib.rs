//! Board support for the Ekspresi kiosk: the only crate that touches hardware.
//!
//! - [`camera`]: a V4L2 camera (USB/UVC webcams directly, the Pi camera module through
//!   libcamera's V4L2 compatibility layer), negotiating YUYV or MJPEG and handing out RGB.
//! - [`pixels`]: the pixel-format conversions the camera needs (pure functions, tested on
//!   any machine).
//! - [`leds`]: the three status LEDs on GPIO via `rppal`, as embedded-hal `OutputPin`s.
//! - [`platform`]: facts about the machine we run on, for the kiosk's self-test.
//!
//! The application (`firmware`) never calls `v4l` or `rppal` itself; it gets frames and
//! pins from here and is generic over them, so it also runs on a laptop.

pub mod camera;
pub mod leds;
pub mod pixels;
pub mod platform;
