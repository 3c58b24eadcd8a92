//! Frame sources: the live camera (through the `board` crate) and recorded clips for the
//! demo, tests and re-analysis.

pub mod camera;
pub mod folder;

pub use camera::CameraSource;
pub use folder::ImageFolderSource;
