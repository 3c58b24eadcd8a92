//! Recorded frame sources for the demo, tests and re-analysis: folders of stills, and the
//! H.264 MP4s the kiosk records. The live camera is the `board` crate's (`Board::open_camera`).

pub mod folder;
pub mod mp4;

pub use folder::ImageFolderSource;
pub use mp4::Mp4Source;
