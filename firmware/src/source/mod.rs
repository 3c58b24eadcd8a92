//! Recorded frame sources for the demo, tests and re-analysis: folders of stills, and the
//! H.264 MP4s the kiosk records. The live camera is the `board` crate's (`Board::open_camera`).

pub mod demo;
pub mod folder;

pub use crate::mp4::Mp4Source;
pub use demo::demo_clip;
pub use folder::ImageFolderSource;
