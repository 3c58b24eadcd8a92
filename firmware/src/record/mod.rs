//! What the kiosk leaves on the SD card: the annotated video (drawn by [`overlay`] with
//! [`glyphs`], written by [`crate::mp4`], blurred whole in the privacy mode by [`privacy`]), the lesson summaries
//! ([`summary`], written by [`files`]) and their chart ([`chart`]), the per-second log a
//! recovery rebuilds them from ([`seconds`]), the per-session folder with its manifest
//! ([`session`]), the retention that keeps the card from filling up ([`retention`]) and the
//! space held back so that a full card still gets a lesson's summaries ([`reserve`]); and the
//! trust boundary the school's machines read a desk's session folders through ([`untrusted`]).

pub mod chart;
pub mod files;
pub mod glyphs;
pub mod overlay;
pub mod privacy;
pub mod reserve;
pub mod retention;
pub mod seconds;
pub mod session;
pub mod summary;
pub mod untrusted;
