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
use std::io::{BufReader, Read, Write};
use std::path::{Path, PathBuf};

use age::x25519::Recipient;
use sha2::{Digest, Sha256};

use crate::record::session::MANIFEST;
use crate::record::untrusted::{parse_manifest, SessionFiles};

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

/// Whether `name` is a finished segment's name (`video-NNNNNN.mp4.age`).
pub fn is_segment(name: &str) -> bool {
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

/// The most bytes an age header may take (ours are about 200 bytes per recipient, at most
/// [`MAX_RECIPIENTS`]): a segment whose header does not end within this is refused before
/// age reads it (a zero-filled segment once made it allocate until the process aborted).
pub const MAX_AGE_HEADER_BYTES: usize = 64 * 1024;

/// Decrypts a session's segments in order into `out`: the lesson's fragmented MP4.
/// Returns the number of segments.
///
/// A session folder is a desk's, so untrusted (`record::untrusted`): its MANIFEST must
/// list the segments as the recorder numbered them (`video-000001…`, none missing, none
/// out of order), the folder may hold no segment the MANIFEST does not list (one from
/// another lesson), and each segment, read once through the trust boundary, must have the
/// SHA-256 the MANIFEST gives it. Whatever was written to `out` before a refusal is not a
/// lesson: the caller discards it.
pub fn decrypt_session(
    dir: &Path,
    identities: &[Box<dyn age::Identity>],
    out: &mut impl Write,
) -> Result<usize, SealError> {
    let untrusted = |error: String| SealError::Decrypt {
        path: dir.to_owned(),
        reason: error,
    };
    let files = SessionFiles::open(dir).map_err(|e| untrusted(e.to_string()))?;
    let manifest = files
        .read_text(MANIFEST)
        .map_err(|e| untrusted(format!("{e} (decrypt needs a COMPLETE session)")))?;
    let entries = parse_manifest(&manifest).map_err(|e| untrusted(e.to_string()))?;
    let listed: Vec<(&str, &str)> = entries
        .into_iter()
        .filter(|(_, name)| is_segment(name))
        .collect();
    if listed.is_empty() {
        return Err(SealError::NoSegments(dir.to_owned()));
    }
    check_segment_order(&listed).map_err(untrusted)?;
    check_no_unlisted_segments(dir, &listed).map_err(untrusted)?;
    for (hash, name) in &listed {
        decrypt_segment(&files, name, hash, identities, out)?;
    }
    Ok(listed.len())
}

/// The MANIFEST's segments are `video-000001…` in order, none missing.
fn check_segment_order(listed: &[(&str, &str)]) -> Result<(), String> {
    for (index, (_, name)) in listed.iter().enumerate() {
        let expected = u32::try_from(index + 1)
            .map(segment_name)
            .map_err(|_| "too many segments".to_owned())?;
        if *name != expected {
            return Err(format!(
                "the MANIFEST lists {name} where {expected} belongs: a segment is missing or \
                 out of order"
            ));
        }
    }
    Ok(())
}

/// Every segment in the folder is one the MANIFEST lists.
fn check_no_unlisted_segments(dir: &Path, listed: &[(&str, &str)]) -> Result<(), String> {
    let on_disk = segments(dir).map_err(|e| e.to_string())?;
    for path in on_disk {
        let name = path.file_name().unwrap_or_default().to_string_lossy();
        if !listed.iter().any(|(_, listed)| *listed == name) {
            return Err(format!(
                "{name} is not in the session's MANIFEST (a segment from another lesson?)"
            ));
        }
    }
    Ok(())
}

/// Decrypts one segment into `out`, hashing every byte of the file as it is read, and
/// checks the hash against the MANIFEST's once the file is read to its end.
fn decrypt_segment(
    files: &SessionFiles,
    name: &str,
    listed_hash: &str,
    identities: &[Box<dyn age::Identity>],
    out: &mut impl Write,
) -> Result<(), SealError> {
    let path = files.path().join(name);
    let fail = |reason: String| SealError::Decrypt {
        path: path.clone(),
        reason,
    };
    let file = files.reader(name).map_err(|e| fail(e.to_string()))?;
    let mut hashed = BufReader::with_capacity(
        MAX_AGE_HEADER_BYTES,
        Hashing {
            inner: file,
            hasher: Sha256::new(),
        },
    );
    check_header_bounded(&mut hashed).map_err(fail)?;
    let decryptor = age::Decryptor::new_buffered(&mut hashed).map_err(|e| fail(e.to_string()))?;
    let mut plain = decryptor
        .decrypt(identities.iter().map(|i| i.as_ref()))
        .map_err(|e| fail(e.to_string()))?;
    std::io::copy(&mut plain, out).map_err(|e| fail(e.to_string()))?;
    drop(plain);
    // Whatever age left unread still counts towards the file's hash.
    std::io::copy(&mut hashed, &mut std::io::sink()).map_err(|e| fail(e.to_string()))?;
    let actual: String = hashed
        .into_inner()
        .hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    if !actual.eq_ignore_ascii_case(listed_hash) {
        return Err(fail("SHA-256 differs from the session's MANIFEST".into()));
    }
    Ok(())
}

/// The age header (up to its `---` line) ends within the first [`MAX_AGE_HEADER_BYTES`].
fn check_header_bounded(reader: &mut impl std::io::BufRead) -> Result<(), String> {
    let start = reader.fill_buf().map_err(|e| e.to_string())?;
    let mac_line = start
        .windows(4)
        .position(|w| w == b"\n---")
        .ok_or("not an age file, or its header is over 64 KiB")?;
    if !start[mac_line + 1..].contains(&b'\n') {
        return Err("not an age file, or its header is over 64 KiB".into());
    }
    Ok(())
}

/// A reader that hashes what passes through it.
struct Hashing<R> {
    inner: R,
    hasher: Sha256,
}

impl<R: Read> Read for Hashing<R> {
    fn read(&mut self, buffer: &mut [u8]) -> std::io::Result<usize> {
        let read = self.inner.read(buffer)?;
        self.hasher.update(&buffer[..read]);
        Ok(read)
    }
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
        let write_manifest = || {
            let text = crate::record::session::manifest(&dir).unwrap();
            std::fs::write(dir.join(MANIFEST), text).unwrap();
        };
        write_manifest();
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

        // What a hostile desk can do to the segments, each refused with its reason.
        let refused = |what: &str, expected: &str| {
            let error = decrypt_session(&dir, &identities, &mut Vec::new()).unwrap_err();
            assert!(error.to_string().contains(expected), "{what}: {error}");
        };
        let segment = |i| dir.join(segment_name(i));
        let (third, fourth) = (segment(3), segment(4));
        let swap = dir.join("swap");
        std::fs::rename(&third, &swap).unwrap();
        std::fs::rename(&fourth, &third).unwrap();
        std::fs::rename(&swap, &fourth).unwrap();
        refused("swapped", "SHA-256 differs");
        write_manifest();
        // Swapped and the MANIFEST rewritten to match: each segment is its own age file, so
        // only the MP4 inside would tell; the hashes now agree, the order is the recorder's.
        assert_eq!(
            decrypt_session(&dir, &identities, &mut Vec::new()).unwrap(),
            12
        );
        std::fs::rename(&third, &swap).unwrap();
        std::fs::rename(&fourth, &third).unwrap();
        std::fs::rename(&swap, &fourth).unwrap();
        write_manifest();

        let saved = std::fs::read(&fourth).unwrap();
        std::fs::remove_file(&fourth).unwrap();
        refused("missing (manifest left)", "video-000004.mp4.age: missing");
        write_manifest();
        refused(
            "missing (manifest rewritten)",
            "where video-000004.mp4.age belongs",
        );
        std::fs::write(&fourth, &saved).unwrap();
        write_manifest();

        let manifest = std::fs::read_to_string(dir.join(MANIFEST)).unwrap();
        let mut lines: Vec<&str> = manifest.lines().collect();
        lines.swap(2, 3);
        std::fs::write(dir.join(MANIFEST), lines.join("\n") + "\n").unwrap();
        refused("reordered manifest", "where video-000003.mp4.age belongs");
        write_manifest();

        std::fs::copy(segment(1), segment(13)).unwrap();
        refused(
            "foreign",
            "video-000013.mp4.age is not in the session's MANIFEST",
        );
        std::fs::remove_file(segment(13)).unwrap();

        // A zero-filled segment (sparse, 2 GB) is refused by its size; a 64 MiB one by its
        // header, without age reading it.
        let zeros = std::fs::File::create(&fourth).unwrap();
        zeros.set_len(2 << 30).unwrap();
        refused("2 GB of zeros", "over the");
        zeros.set_len(64 << 20).unwrap();
        write_manifest();
        refused("64 MiB of zeros", "header is over 64 KiB");
        std::fs::write(&fourth, &saved).unwrap();
        write_manifest();

        std::fs::remove_file(dir.join(MANIFEST)).unwrap();
        refused("no manifest", "needs a COMPLETE session");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
