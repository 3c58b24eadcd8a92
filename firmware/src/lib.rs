//! The Ekspresi kiosk firmware as a library; `kiosk` (src/main.rs) is its thin front.
//!
//! The application sees hardware only through small traits, so the whole pipeline runs on a
//! laptop against a video file and simulated LEDs.

pub mod detect;
pub mod imageio;
