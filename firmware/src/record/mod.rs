//! What the kiosk leaves on the SD card: the annotated video (drawn by [`overlay`], written
//! by [`crate::mp4`], blurred whole in the privacy mode by [`privacy`]), the lesson summaries ([`summary`]) and their chart ([`chart`]) and the per-session folder with
//! its manifest ([`session`]), and the retention that keeps the card from filling up
//! ([`retention`]).

pub mod chart;
pub mod overlay;
pub mod privacy;
pub mod retention;
pub mod session;
pub mod summary;
