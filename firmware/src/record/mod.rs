//! What the kiosk leaves on the SD card: the annotated video (drawn by [`overlay`], written
//! by [`crate::mp4`]), the lesson summaries ([`summary`]) and their chart ([`chart`]) and the per-session folder with
//! its manifest ([`session`]).

pub mod chart;
pub mod overlay;
pub mod session;
pub mod summary;
