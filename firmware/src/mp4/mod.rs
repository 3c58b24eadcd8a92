//! Everything MP4, in one place: the kiosk's own fragmented H.264 recordings are written by
//! [`write`] into a [`sink`] (a plain file or encrypted segments), cut back to their last whole fragment after a power cut by [`repair`], and
//! replayed by [`read`]; all three walk the file with the same checked box reader,
//! [`boxes`], so they agree on what a whole box is.

pub mod boxes;
pub mod read;
pub mod repair;
pub mod sink;
pub mod write;

pub use read::Mp4Source;
pub use repair::{repair, Repair};
pub use sink::{FragmentSink, PlainFile};
pub use write::{VideoError, VideoRecorder};
