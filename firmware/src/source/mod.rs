//! Recorded frame sources for the demo, tests and re-analysis: folders of stills, the
//! H.264 MP4s the kiosk records, and any other video through the system's ffmpeg. The live
//! camera is the `board` crate's (`Board::open_camera`).

pub mod demo;
pub mod ffmpeg;
pub mod folder;
pub mod paced;

pub use crate::mp4::Mp4Source;
pub use demo::demo_clip;
pub use ffmpeg::FfmpegSource;
pub use folder::ImageFolderSource;
pub use paced::Paced;
