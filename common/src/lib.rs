//! What the offline trainer (`model-quant`) and the kiosk firmware must agree on.
//!
//! Kept tiny and free of camera, GPIO, video and training dependencies so both sides can
//! depend on it: the FER-2013 label set and its grouping into reactions ([`labels`]), the
//! model's input/output contract ([`contract`]) and the one function that turns a grey face
//! into model input ([`preprocess`]).

pub mod contract;
pub mod estimate;
pub mod font;
pub mod fsutil;
pub mod grey;
pub mod guard;
pub mod labels;
pub mod manifest;
pub mod model;
pub mod preprocess;
pub mod rect;

pub use grey::{rgb_to_grey, GreyBuffer, GreyImage, PrepareError};
pub use labels::{Category, Expression};
pub use preprocess::{
    crop_box, face_input, face_pixels, prepare_face, prepare_face_into, FACE_SIDE,
};
pub use rect::Rect;
