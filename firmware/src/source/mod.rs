//! Frame sources: the live camera (through the `board` crate) and recorded clips for the
//! demo, tests and re-analysis (folders of stills, and the H.264 MP4s the kiosk records).

pub mod camera;
pub mod folder;
pub mod mp4;

pub use camera::CameraSource;
pub use folder::ImageFolderSource;
pub use mp4::Mp4Source;
