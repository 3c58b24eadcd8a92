//! The demo clip built into the binary, so `demo` works on an installed Pi and from any
//! directory: the 48 JPEG frames of `firmware/assets/demo/` (public-domain photographs,
//! recipe in `examples/make_demo_clip.rs`), 2 MB, at the frame rate of its `clip.json`.
//! A test checks that this list and the folder agree.

use super::ImageFolderSource;
use crate::devices::SourceError;

/// The clip's frames, in play order.
const FRAMES: [&[u8]; 48] = [
    include_bytes!("../../assets/demo/frame_0000.jpg"),
    include_bytes!("../../assets/demo/frame_0001.jpg"),
    include_bytes!("../../assets/demo/frame_0002.jpg"),
    include_bytes!("../../assets/demo/frame_0003.jpg"),
    include_bytes!("../../assets/demo/frame_0004.jpg"),
    include_bytes!("../../assets/demo/frame_0005.jpg"),
    include_bytes!("../../assets/demo/frame_0006.jpg"),
    include_bytes!("../../assets/demo/frame_0007.jpg"),
    include_bytes!("../../assets/demo/frame_0008.jpg"),
    include_bytes!("../../assets/demo/frame_0009.jpg"),
    include_bytes!("../../assets/demo/frame_0010.jpg"),
    include_bytes!("../../assets/demo/frame_0011.jpg"),
    include_bytes!("../../assets/demo/frame_0012.jpg"),
    include_bytes!("../../assets/demo/frame_0013.jpg"),
    include_bytes!("../../assets/demo/frame_0014.jpg"),
    include_bytes!("../../assets/demo/frame_0015.jpg"),
    include_bytes!("../../assets/demo/frame_0016.jpg"),
    include_bytes!("../../assets/demo/frame_0017.jpg"),
    include_bytes!("../../assets/demo/frame_0018.jpg"),
    include_bytes!("../../assets/demo/frame_0019.jpg"),
    include_bytes!("../../assets/demo/frame_0020.jpg"),
    include_bytes!("../../assets/demo/frame_0021.jpg"),
    include_bytes!("../../assets/demo/frame_0022.jpg"),
    include_bytes!("../../assets/demo/frame_0023.jpg"),
    include_bytes!("../../assets/demo/frame_0024.jpg"),
    include_bytes!("../../assets/demo/frame_0025.jpg"),
    include_bytes!("../../assets/demo/frame_0026.jpg"),
    include_bytes!("../../assets/demo/frame_0027.jpg"),
    include_bytes!("../../assets/demo/frame_0028.jpg"),
    include_bytes!("../../assets/demo/frame_0029.jpg"),
    include_bytes!("../../assets/demo/frame_0030.jpg"),
    include_bytes!("../../assets/demo/frame_0031.jpg"),
    include_bytes!("../../assets/demo/frame_0032.jpg"),
    include_bytes!("../../assets/demo/frame_0033.jpg"),
    include_bytes!("../../assets/demo/frame_0034.jpg"),
    include_bytes!("../../assets/demo/frame_0035.jpg"),
    include_bytes!("../../assets/demo/frame_0036.jpg"),
    include_bytes!("../../assets/demo/frame_0037.jpg"),
    include_bytes!("../../assets/demo/frame_0038.jpg"),
    include_bytes!("../../assets/demo/frame_0039.jpg"),
    include_bytes!("../../assets/demo/frame_0040.jpg"),
    include_bytes!("../../assets/demo/frame_0041.jpg"),
    include_bytes!("../../assets/demo/frame_0042.jpg"),
    include_bytes!("../../assets/demo/frame_0043.jpg"),
    include_bytes!("../../assets/demo/frame_0044.jpg"),
    include_bytes!("../../assets/demo/frame_0045.jpg"),
    include_bytes!("../../assets/demo/frame_0046.jpg"),
    include_bytes!("../../assets/demo/frame_0047.jpg"),
];

/// The clip's `clip.json`.
const CLIP_JSON: &str = include_str!("../../assets/demo/clip.json");

/// The built-in demo clip, played like the folder it was made from.
pub fn demo_clip() -> Result<ImageFolderSource, SourceError> {
    ImageFolderSource::embedded("built-in demo clip", &FRAMES, CLIP_JSON)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::devices::FrameSource;

    #[test]
    fn the_built_in_clip_is_the_assets_folder_frame_for_frame() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("assets/demo");
        let mut folder = crate::source::ImageFolderSource::open(&dir, 1.0).unwrap();
        let mut built_in = demo_clip().unwrap();
        assert_eq!(built_in.len(), folder.len());
        assert_eq!(built_in.frame_rate(), folder.frame_rate());
        while let Some(expected) = folder.next_frame().unwrap() {
            let frame = built_in.next_frame().unwrap().expect("as many frames");
            assert_eq!(frame.rgb(), expected.rgb());
            assert_eq!(frame.timestamp(), expected.timestamp());
        }
        assert!(built_in.next_frame().unwrap().is_none());
    }
}
