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
    /// Bytes stored so far: where the file is cut back to when a piece fails half-written.
    stored: u64,
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
            stored: 0,
        })
    }
}

impl FragmentSink for PlainFile {
    fn store(&mut self, piece: &[u8]) -> Result<(), VideoError> {
        let io = |source| VideoError::Io {
            path: self.path.clone(),
            source,
        };
        let written = self
            .file
            .write_all(piece)
            .and_then(|()| self.file.sync_data());
        if let Err(error) = written {
            // A full card mid-piece: cut the half-written piece off again, so the file
            // ends at a whole fragment and its space goes back to the summaries.
            let _ = self.file.set_len(self.stored);
            let _ = self.file.sync_data();
            return Err(io(error));
        }
        self.stored = self.stored.saturating_add(piece.len() as u64);
        Ok(())
    }
}
