//! What the kiosk leaves on the SD card: the annotated video ([`video`], drawn by
//! [`overlay`]), the lesson summaries ([`summary`]) and the per-session folder with its
//! manifest ([`session`]).

pub mod boxes;
pub mod overlay;
pub mod session;
pub mod summary;
pub mod video;
