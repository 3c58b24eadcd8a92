//! Where a recording's bytes go. The writer hands over the stream one whole, durable piece
//! at a time — the first piece is the MP4 header with the first fragment, then one fragment
//! per keyframe interval — and a sink stores each before the next is built. Two sinks:
//! [`PlainFile`] appends to `video.mp4`; [`crate::seal::SealedSegments`] encrypts each piece
//! into its own age file, so no plaintext video reaches the card.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

use super::write::VideoError;

/// Stores whole pieces of a fragmented MP4 stream, each durably before returning.
pub trait FragmentSink: Send {
    /// Stores `piece` (the header with the first fragment, or a later fragment) so that a
    /// power cut after this returns cannot lose it.
    fn store(&mut self, piece: &[u8]) -> Result<(), VideoError>;
}

/// The recording in the clear: one `video.mp4`, appended and `fdatasync`'d piece by piece
/// (a power cut leaves a file that [`super::repair`] cuts back to its last whole fragment).
pub struct PlainFile {
    path: PathBuf,
    file: File,
}

impl PlainFile {
    pub fn create(path: &Path) -> Result<Self, VideoError> {
        let file =
            ekspresi_common::fsutil::create_private(path).map_err(|source| VideoError::Io {
                path: path.to_owned(),
                source,
            })?;
        Ok(Self {
            path: path.to_owned(),
            file,
        })
    }
}

impl FragmentSink for PlainFile {
    fn store(&mut self, piece: &[u8]) -> Result<(), VideoError> {
        let io = |source| VideoError::Io {
            path: self.path.clone(),
            source,
        };
        self.file.write_all(piece).map_err(io)?;
        self.file.sync_data().map_err(io)
    }
}
