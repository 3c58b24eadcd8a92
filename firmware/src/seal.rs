//! Video encrypted at rest: with `encrypt_to` set, the recording reaches the card only as
//! age files, one per MP4 fragment.
//!
//! The MP4 writer hands over whole pieces (the header with the first fragment, then one
//! fragment per keyframe interval); [`SealedSegments`] encrypts each with the `age` crate to
//! the school's X25519 recipients into `video-000001.mp4.age`, `video-000002.mp4.age`, …
//! Each is a complete age file, written as `….tmp`, fsynced and renamed, so a power cut
//! loses at most the fragment being written, and every segment on the card decrypts with the
//! standard `age` tool. Decrypted in name order and concatenated, the segments are the
//! fragmented MP4 ([`decrypt_session`], `kiosk decrypt`). The kiosk holds only public
//! recipients, never an identity, so a stolen card or kiosk reveals no video.
//!
//! Why segments rather than one age stream: an age file whose last chunk was never written
//! does not decrypt, so one stream per lesson would lose the lesson's video at a power cut.

use std::fs::File;
use std::io::{BufReader, Write};
use std::path::{Path, PathBuf};

use age::x25519::Recipient;

use crate::mp4::{FragmentSink, VideoError};

/// Suffix of a finished segment; `video-NNNNNN` comes before it.
const SEGMENT_SUFFIX: &str = ".mp4.age";
const SEGMENT_PREFIX: &str = "video-";
/// At most this many recipients (a school's key and a few spares, not a mailing list).
pub const MAX_RECIPIENTS: usize = 16;

/// Why video could not be sealed or unsealed.
#[derive(Debug, thiserror::Error)]
pub enum SealError {
    #[error("recipient {index} ({value:?}) is not an age X25519 public key (age1…): {reason}")]
    Recipient {
        index: usize,
        value: String,
        reason: String,
    },
    #[error("{count} recipients; at most {MAX_RECIPIENTS}")]
    TooManyRecipients { count: usize },
    #[error("identity file {path}: {reason}")]
    Identity { path: PathBuf, reason: String },
    #[error("{path}: {reason}")]
    Decrypt { path: PathBuf, reason: String },
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{0} holds no encrypted video segments (video-NNNNNN.mp4.age)")]
    NoSegments(PathBuf),
}

/// Parses `encrypt_to` (age X25519 recipients, `age1…`).
pub fn parse_recipients(values: &[String]) -> Result<Vec<Recipient>, SealError> {
    if values.len() > MAX_RECIPIENTS {
        return Err(SealError::TooManyRecipients {
            count: values.len(),
        });
    }
    values
        .iter()
        .enumerate()
        .map(|(index, value)| {
            value
                .trim()
                .parse::<Recipient>()
                .map_err(|reason| SealError::Recipient {
                    index,
                    value: value.clone(),
                    reason: reason.to_string(),
                })
        })
        .collect()
}

/// The name of segment `index` (1-based), sortable by name up to a million segments.
pub fn segment_name(index: u32) -> String {
    format!("{SEGMENT_PREFIX}{index:06}{SEGMENT_SUFFIX}")
}

fn is_segment(name: &str) -> bool {
    name.strip_prefix(SEGMENT_PREFIX)
        .and_then(|rest| rest.strip_suffix(SEGMENT_SUFFIX))
        .is_some_and(|digits| digits.len() >= 6 && digits.bytes().all(|b| b.is_ascii_digit()))
}

/// The finished segments in `dir`, in stream order.
pub fn segments(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut names: Vec<String> = std::fs::read_dir(dir)?
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|name| is_segment(name))
        .collect();
    // Equal-width numbers sort by name; a wider one (past 999999) sorts by length first.
    names.sort_by(|a, b| a.len().cmp(&b.len()).then_with(|| a.cmp(b)));
    Ok(names.into_iter().map(|name| dir.join(name)).collect())
}

/// Removes segments a power cut left unfinished (`….mp4.age.tmp`): without the identity
/// they cannot be cut back, and each holds at most one fragment. Returns how many.
pub fn remove_unfinished(dir: &Path) -> std::io::Result<usize> {
    let mut removed = 0;
    for entry in std::fs::read_dir(dir)?.filter_map(|e| e.ok()) {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.strip_suffix(".tmp").is_some_and(is_segment) {
            std::fs::remove_file(entry.path())?;
            removed += 1;
        }
    }
    Ok(removed)
}

/// A recording as age-encrypted segments in a session folder, one per stored piece.
pub struct SealedSegments {
    dir: PathBuf,
    recipients: Vec<Recipient>,
    next_index: u32,
}

impl SealedSegments {
    /// Segments go into `dir`, encrypted to `recipients` (at least one).
    pub fn new(dir: &Path, recipients: Vec<Recipient>) -> Result<Self, VideoError> {
        if recipients.is_empty() {
            return Err(VideoError::Seal("no recipients to encrypt to".into()));
        }
        Ok(Self {
            dir: dir.to_owned(),
            recipients,
            next_index: 1,
        })
    }

    fn seal(&self, piece: &[u8], tmp: &Path) -> Result<(), VideoError> {
        let io = |source| VideoError::Io {
            path: tmp.to_owned(),
            source,
        };
        let encryptor = age::Encryptor::with_recipients(
            self.recipients.iter().map(|r| r as &dyn age::Recipient),
        )
        .map_err(|e| VideoError::Seal(e.to_string()))?;
        let file = ekspresi_common::fsutil::create_private(tmp).map_err(io)?;
        let mut sealed = encryptor.wrap_output(file).map_err(io)?;
        sealed.write_all(piece).map_err(io)?;
        sealed.finish().map_err(io)?.sync_all().map_err(io)
    }
}

impl FragmentSink for SealedSegments {
    fn store(&mut self, piece: &[u8]) -> Result<(), VideoError> {
        let name = segment_name(self.next_index);
        let path = self.dir.join(&name);
        let tmp = self.dir.join(format!("{name}.tmp"));
        if let Err(error) = self.seal(piece, &tmp) {
            // A full card mid-segment: the half-written segment gives its space back.
            let _ = std::fs::remove_file(&tmp);
            return Err(error);
        }
        let io = |source| VideoError::Io {
            path: path.clone(),
            source,
        };
        std::fs::rename(&tmp, &path).map_err(io)?;
        File::open(&self.dir)
            .and_then(|d| d.sync_all())
            .map_err(io)?;
        self.next_index = self
            .next_index
            .checked_add(1)
            .ok_or_else(|| VideoError::Seal("more than 2^32 segments".into()))?;
        Ok(())
    }
}

/// An age identity file (as `age-keygen` writes it): the school's secret, never on a kiosk.
pub fn read_identities(path: &Path) -> Result<Vec<Box<dyn age::Identity>>, SealError> {
    let fail = |reason: String| SealError::Identity {
        path: path.to_owned(),
        reason,
    };
    let file = File::open(path).map_err(|e| fail(e.to_string()))?;
    let identities = age::IdentityFile::from_buffer(BufReader::new(file))
        .map_err(|e| fail(e.to_string()))?
        .into_identities()
        .map_err(|e| fail(e.to_string()))?;
    if identities.is_empty() {
        return Err(fail("no identities in the file".into()));
    }
    Ok(identities)
}

/// Decrypts a session's segments in order into `out`: the lesson's fragmented MP4.
/// Returns the number of segments.
pub fn decrypt_session(
    dir: &Path,
    identities: &[Box<dyn age::Identity>],
    out: &mut impl Write,
) -> Result<usize, SealError> {
    let io = |path: &Path| {
        let path = path.to_owned();
        move |source| SealError::Io { path, source }
    };
    let segments = segments(dir).map_err(io(dir))?;
    if segments.is_empty() {
        return Err(SealError::NoSegments(dir.to_owned()));
    }
    for segment in &segments {
        let fail = |reason: String| SealError::Decrypt {
            path: segment.clone(),
            reason,
        };
        let file = File::open(segment).map_err(io(segment))?;
        let decryptor =
            age::Decryptor::new_buffered(BufReader::new(file)).map_err(|e| fail(e.to_string()))?;
        let mut plain = decryptor
            .decrypt(identities.iter().map(|i| i.as_ref()))
            .map_err(|e| fail(e.to_string()))?;
        std::io::copy(&mut plain, out).map_err(|e| fail(e.to_string()))?;
    }
    Ok(segments.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segment_names_sort_in_stream_order() {
        assert_eq!(segment_name(7), "video-000007.mp4.age");
        assert!(is_segment(&segment_name(1_000_000)));
        assert!(!is_segment("video-000001.mp4.age.tmp"));
        assert!(!is_segment("video-00001a.mp4.age"));
        assert!(!is_segment("video.mp4"));
    }

    #[test]
    fn recipients_are_checked_by_position() {
        let identity = age::x25519::Identity::generate();
        let good = identity.to_public().to_string();
        assert_eq!(
            parse_recipients(std::slice::from_ref(&good))
                .map(|r| r.len())
                .ok(),
            Some(1)
        );
        let error = parse_recipients(&[good, "age1notakey".into()]).unwrap_err();
        assert!(error.to_string().contains("recipient 1"), "{error}");
        let many = vec![identity.to_public().to_string(); MAX_RECIPIENTS + 1];
        assert!(matches!(
            parse_recipients(&many),
            Err(SealError::TooManyRecipients { .. })
        ));
    }

    /// Pieces stored through the sink come back, in order, with the identity only.
    #[test]
    fn stored_pieces_decrypt_in_order_and_leave_no_plaintext() {
        let dir = std::env::temp_dir().join(format!("ekspresi-seal-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let identity = age::x25519::Identity::generate();
        let mut sink = SealedSegments::new(&dir, vec![identity.to_public()]).unwrap();
        let pieces: Vec<Vec<u8>> = (0u8..12)
            .map(|i| vec![i; 1000 + 70_000 * usize::from(i % 3)])
            .collect();
        for piece in &pieces {
            sink.store(piece).unwrap();
        }
        assert_eq!(segments(&dir).unwrap().len(), 12);
        for segment in segments(&dir).unwrap() {
            let bytes = std::fs::read(segment).unwrap();
            assert!(bytes.starts_with(b"age-encryption.org/v1\n"));
            assert!(
                !bytes.windows(64).any(|w| w.iter().all(|&b| b == w[0])),
                "plaintext run"
            );
        }
        let mut out = Vec::new();
        let identities: Vec<Box<dyn age::Identity>> = vec![Box::new(identity)];
        assert_eq!(decrypt_session(&dir, &identities, &mut out).unwrap(), 12);
        assert_eq!(out, pieces.concat());

        let stranger: Vec<Box<dyn age::Identity>> =
            vec![Box::new(age::x25519::Identity::generate())];
        let error = decrypt_session(&dir, &stranger, &mut Vec::new()).unwrap_err();
        assert!(
            error.to_string().contains("video-000001.mp4.age"),
            "{error}"
        );

        std::fs::write(dir.join("video-000013.mp4.age.tmp"), b"cut").unwrap();
        assert_eq!(remove_unfinished(&dir).unwrap(), 1);
        assert_eq!(segments(&dir).unwrap().len(), 12);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
