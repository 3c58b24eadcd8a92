//! The trust boundary for session folders read on the school's machines.
//!
//! Every file in a session folder was written by a desk — a Pi anyone in the room can
//! reach, or an SD card a student can take home — and `report`, `upload` and `decrypt` read
//! it. [`SessionFiles`] is the one way they do: the folder is opened once (never through a
//! link), and each file is opened *relative to that folder* (`openat`) with `O_NOFOLLOW`
//! and `O_NONBLOCK`, checked to be a regular file on the opened descriptor (`fstat`, so the
//! check and the read are of the same file) and no larger than a file of its kind can be
//! ([`size_limit`]) before a byte is read; reads stop at that limit even if the file grows.
//! A link to `/etc/shadow`, a FIFO, `/dev/zero`, a socket or a sparse terabyte is refused
//! with its name and what it is, before anything is read or allocated.
//!
//! [`SessionFiles::verify_manifest`] checks the folder's `MANIFEST` (what `sha256sum -c`
//! checks) through the same reader: the MANIFEST is read with a size cap, every line is
//! parsed before any file is hashed — a plain file name of this folder (no `/`, no `..`, no
//! control characters), listed once, at most [`MAX_MANIFEST_ENTRIES`] lines — then each
//! named file is hashed once, streaming.
//!
//! Why `rustix` and not `std::fs`: std has no `openat`; opening `dir/name` by path would
//! follow a link in place of the folder itself. `rustix` is the maintained safe binding.

use std::collections::HashSet;
use std::fs::File;
use std::io::Read;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

use rustix::fs::{Mode, OFlags};
use rustix::io::Errno;
use sha2::{Digest, Sha256};

use super::session::{
    COMPLETE, MANIFEST, SECONDS_CSV, SUMMARY_JSON, SUMMARY_TXT, TIMELINE_CSV, TIMELINE_PNG, VIDEO,
};

/// The most lines a MANIFEST may have: an encrypted video of the longest lesson with a
/// keyframe every second is one segment per second, and the other files are a handful.
pub const MAX_MANIFEST_ENTRIES: usize = crate::limits::MAX_LESSON_SECONDS as usize + 64;

/// The longest file name a MANIFEST may list (the kiosk's longest is 20 bytes).
pub const MAX_NAME_BYTES: usize = 128;

const KIB: u64 = 1024;
const MIB: u64 = 1024 * KIB;
const GIB: u64 = 1024 * MIB;

/// The most bytes a session file of this name may hold, stated per kind: well above what a
/// kiosk writes in the longest lesson (12 h), far below what would hurt to read.
pub fn size_limit(name: &str) -> u64 {
    match name {
        // 12 h of 640×480 H.264 at the recorder's rates is a few GB; an SD card is smaller.
        VIDEO => 64 * GIB,
        // One keyframe interval (≤ 10 s) of video, encrypted.
        _ if crate::seal::is_segment(name) => GIB,
        // ~90 bytes a line at most MAX_MANIFEST_ENTRIES lines of short names.
        MANIFEST => 8 * MIB,
        // The kiosk's are about 1.5 kB.
        SUMMARY_JSON | SUMMARY_TXT => MIB,
        // A 12-hour lesson's timeline is about 1 MB, its per-second log about 3 MB.
        TIMELINE_CSV => 16 * MIB,
        SECONDS_CSV => 64 * MIB,
        TIMELINE_PNG => 16 * MIB,
        COMPLETE => 64 * KIB,
        _ => 16 * MIB,
    }
}

/// Why a session file was not read.
#[derive(Debug, thiserror::Error)]
pub enum UntrustedError {
    #[error("{path}: not a folder (a link or a special file)")]
    NotAFolder { path: PathBuf },
    #[error("{name:?} is not a plain file name of the session")]
    NotAPlainName { name: String },
    #[error("{name}: missing")]
    Missing { name: String },
    #[error("{name}: a {kind}, not a regular file")]
    NotRegular { name: String, kind: &'static str },
    #[error("{name}: {size} bytes, over the {limit} a {name} may hold")]
    TooLarge { name: String, size: u64, limit: u64 },
    #[error("{name}: {source}")]
    Io {
        name: String,
        source: std::io::Error,
    },
}

/// Why a session's files do not match its `MANIFEST`.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    #[error(transparent)]
    File(#[from] UntrustedError),
    #[error("MANIFEST line {line} is not `<sha256>  <plain file name>`")]
    Malformed { line: usize },
    #[error("MANIFEST line {line} lists {name} a second time")]
    Duplicate { line: usize, name: String },
    #[error("MANIFEST lists over {MAX_MANIFEST_ENTRIES} files")]
    TooManyEntries,
    #[error("{name}: SHA-256 differs from MANIFEST")]
    Mismatch { name: String },
}

/// A MANIFEST that verified: the names it lists, in its order, and the SHA-256 of the
/// MANIFEST itself (one session's fingerprint, however many roots reach it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    pub names: Vec<String>,
    pub digest: [u8; 32],
}

/// A session folder opened for reading untrusted files from it.
#[derive(Debug)]
pub struct SessionFiles {
    path: PathBuf,
    dir: OwnedFd,
}

impl SessionFiles {
    /// Opens `path` as a folder; a link (even to a folder) or anything else is refused.
    pub fn open(path: &Path) -> Result<Self, UntrustedError> {
        let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        let dir = rustix::fs::open(path, flags, Mode::empty()).map_err(|errno| match errno {
            Errno::NOTDIR | Errno::LOOP => UntrustedError::NotAFolder {
                path: path.to_owned(),
            },
            errno => UntrustedError::Io {
                name: path.display().to_string(),
                source: errno.into(),
            },
        })?;
        Ok(Self {
            path: path.to_owned(),
            dir,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Opens the regular file `name` of this folder, at most [`size_limit`] bytes, and
    /// returns it with its size.
    pub fn open_file(&self, name: &str) -> Result<(File, u64), UntrustedError> {
        if !is_plain_name(name) {
            return Err(UntrustedError::NotAPlainName {
                name: name.to_owned(),
            });
        }
        // O_NONBLOCK: opening a FIFO must not wait for a writer (it is refused just after).
        let flags =
            OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::NOCTTY | OFlags::CLOEXEC;
        let fd = rustix::fs::openat(&self.dir, name, flags, Mode::empty()).map_err(|errno| {
            match errno {
                Errno::NOENT => UntrustedError::Missing {
                    name: name.to_owned(),
                },
                Errno::LOOP => UntrustedError::NotRegular {
                    name: name.to_owned(),
                    kind: "symbolic link",
                },
                // A socket (ENXIO) or a device without a driver cannot even be opened.
                Errno::NXIO | Errno::NODEV => UntrustedError::NotRegular {
                    name: name.to_owned(),
                    kind: "special file",
                },
                errno => io_error(name, errno.into()),
            }
        })?;
        let file = File::from(fd);
        let metadata = file.metadata().map_err(|e| io_error(name, e))?;
        if !metadata.is_file() {
            return Err(UntrustedError::NotRegular {
                name: name.to_owned(),
                kind: kind_of(&metadata.file_type()),
            });
        }
        let limit = size_limit(name);
        if metadata.len() > limit {
            return Err(UntrustedError::TooLarge {
                name: name.to_owned(),
                size: metadata.len(),
                limit,
            });
        }
        Ok((file, metadata.len()))
    }

    /// The file `name` as a reader that stops at its size limit (a file growing while it is
    /// read cannot take more).
    pub fn reader(&self, name: &str) -> Result<std::io::Take<File>, UntrustedError> {
        let (file, _) = self.open_file(name)?;
        Ok(file.take(size_limit(name)))
    }

    /// The whole of `name` as text (at most its size limit; not UTF-8 is an error).
    pub fn read_text(&self, name: &str) -> Result<String, UntrustedError> {
        let (file, size) = self.open_file(name)?;
        let mut text = String::with_capacity(usize::try_from(size).unwrap_or(0));
        file.take(size_limit(name))
            .read_to_string(&mut text)
            .map_err(|e| io_error(name, e))?;
        Ok(text)
    }

    /// Whether the folder holds an entry `name` of any kind (markers like `COMPLETE`).
    pub fn has(&self, name: &str) -> bool {
        rustix::fs::statat(&self.dir, name, rustix::fs::AtFlags::SYMLINK_NOFOLLOW).is_ok()
    }

    /// The SHA-256 of `name` in lower-case hex, read as a stream in constant memory.
    pub fn sha256(&self, name: &str) -> Result<String, UntrustedError> {
        let mut reader = self.reader(name)?;
        let mut hasher = Sha256::new();
        // On the stack: most session files are a few kB, and a fresh 1 MiB heap buffer a
        // file cost a page-faulting allocation each.
        let mut buffer = [0u8; 64 * 1024];
        loop {
            match reader.read(&mut buffer) {
                Ok(0) => break,
                Ok(read) => hasher.update(&buffer[..read]),
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(io_error(name, e)),
            }
        }
        Ok(hex(&hasher.finalize()))
    }

    /// Checks every file `MANIFEST` lists against its SHA-256 (what `sha256sum -c MANIFEST`
    /// does): every line is parsed and checked first, then each file is hashed once.
    pub fn verify_manifest(&self) -> Result<Verified, ManifestError> {
        let text = self.read_text(MANIFEST)?;
        let entries = parse_manifest(&text)?;
        for (hash, name) in &entries {
            if !self.sha256(name)?.eq_ignore_ascii_case(hash) {
                return Err(ManifestError::Mismatch {
                    name: (*name).to_owned(),
                });
            }
        }
        Ok(Verified {
            names: entries.iter().map(|(_, name)| (*name).to_owned()).collect(),
            digest: Sha256::digest(text.as_bytes()).into(),
        })
    }
}

/// The `(sha256, name)` pairs of a MANIFEST's text, each name plain and listed once, at
/// most [`MAX_MANIFEST_ENTRIES`].
pub fn parse_manifest(text: &str) -> Result<Vec<(&str, &str)>, ManifestError> {
    let mut entries = Vec::new();
    let mut seen = HashSet::new();
    for (index, line) in text.lines().enumerate() {
        let line_number = index + 1;
        if entries.len() == MAX_MANIFEST_ENTRIES {
            return Err(ManifestError::TooManyEntries);
        }
        let malformed = ManifestError::Malformed { line: line_number };
        let (hash, name) = line.split_once("  ").ok_or(malformed)?;
        if hash.len() != 64 || !hash.bytes().all(|b| b.is_ascii_hexdigit()) || !is_plain_name(name)
        {
            return Err(ManifestError::Malformed { line: line_number });
        }
        if !seen.insert(name) {
            return Err(ManifestError::Duplicate {
                line: line_number,
                name: name.to_owned(),
            });
        }
        entries.push((hash, name));
    }
    Ok(entries)
}

/// A name that stays inside its folder and prints as itself: 1 to [`MAX_NAME_BYTES`]
/// bytes, not `.` or `..`, no `/`, NUL or other control characters.
pub fn is_plain_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_NAME_BYTES
        && name != "."
        && name != ".."
        && !name.chars().any(|c| c == '/' || c.is_control())
}

fn kind_of(file_type: &std::fs::FileType) -> &'static str {
    use std::os::unix::fs::FileTypeExt as _;
    if file_type.is_dir() {
        "folder"
    } else if file_type.is_fifo() {
        "named pipe"
    } else if file_type.is_char_device() || file_type.is_block_device() {
        "device"
    } else if file_type.is_socket() {
        "socket"
    } else {
        "special file"
    }
}

fn io_error(name: &str, source: std::io::Error) -> UntrustedError {
    UntrustedError::Io {
        name: name.to_owned(),
        source,
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(name: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("ekspresi-untrusted-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    fn fifo(path: &Path) {
        rustix::fs::mknodat(
            rustix::fs::CWD,
            path,
            rustix::fs::FileType::Fifo,
            Mode::from_raw_mode(0o600),
            0,
        )
        .unwrap();
    }

    #[test]
    fn only_regular_files_inside_the_folder_are_read() {
        let dir = scratch("kinds");
        std::fs::write(dir.join(SUMMARY_JSON), b"{}").unwrap();
        let secret = dir.with_extension("secret");
        std::fs::write(&secret, b"the teacher's file").unwrap();
        std::os::unix::fs::symlink(&secret, dir.join(TIMELINE_CSV)).unwrap();
        std::os::unix::fs::symlink("/dev/zero", dir.join(VIDEO)).unwrap();
        fifo(&dir.join(SECONDS_CSV));
        std::fs::create_dir(dir.join(SUMMARY_TXT)).unwrap();
        // A sparse file past its kind's limit: refused by its size, never read.
        std::fs::File::create(dir.join(TIMELINE_PNG))
            .unwrap()
            .set_len(17 << 20)
            .unwrap();

        let files = SessionFiles::open(&dir).unwrap();
        assert_eq!(files.read_text(SUMMARY_JSON).unwrap(), "{}");
        let refusal = |name: &str| files.read_text(name).unwrap_err().to_string();
        assert_eq!(
            refusal(TIMELINE_CSV),
            "timeline.csv: a symbolic link, not a regular file"
        );
        assert_eq!(
            refusal(VIDEO),
            "video.mp4: a symbolic link, not a regular file"
        );
        assert_eq!(
            refusal(SECONDS_CSV),
            "seconds.csv: a named pipe, not a regular file"
        );
        assert_eq!(
            refusal(SUMMARY_TXT),
            "summary.txt: a folder, not a regular file"
        );
        assert!(refusal(TIMELINE_PNG).contains("17825792 bytes, over the 16777216"));
        assert_eq!(refusal("nothing-here"), "nothing-here: missing");
        for bad in ["../x", "a/b", ".", "..", "", "bell\u{7}", &"n".repeat(129)] {
            assert!(matches!(
                files.open_file(bad),
                Err(UntrustedError::NotAPlainName { .. })
            ));
        }

        // The folder itself through a link is refused too.
        let link = dir.with_extension("link");
        let _ = std::fs::remove_file(&link);
        std::os::unix::fs::symlink(&dir, &link).unwrap();
        assert!(matches!(
            SessionFiles::open(&link),
            Err(UntrustedError::NotAFolder { .. })
        ));
        for path in [link, secret] {
            std::fs::remove_file(path).unwrap();
        }
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_manifest_is_checked_whole_before_any_file_is_hashed() {
        let dir = scratch("manifest");
        std::fs::write(dir.join(SUMMARY_JSON), b"abc").unwrap();
        let abc = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
        let files = SessionFiles::open(&dir).unwrap();
        let with_manifest = |text: String| {
            std::fs::write(dir.join(MANIFEST), text).unwrap();
            files.verify_manifest()
        };
        let verified = with_manifest(format!("{abc}  {SUMMARY_JSON}\n")).unwrap();
        assert_eq!(verified.names, [SUMMARY_JSON]);
        assert_ne!(verified.digest, [0; 32]);

        // The same file 10,000 times is refused at its second line, before hashing.
        let repeated = format!("{abc}  {SUMMARY_JSON}\n").repeat(10_000);
        assert!(matches!(
            with_manifest(repeated),
            Err(ManifestError::Duplicate { line: 2, .. })
        ));
        // Too many lines, even of distinct names.
        let many: String = (0..=MAX_MANIFEST_ENTRIES)
            .map(|i| format!("{abc}  f{i}\n"))
            .collect();
        assert!(matches!(
            with_manifest(many),
            Err(ManifestError::TooManyEntries)
        ));
        // A name that is not a plain name of this folder, a bad hash, a device.
        for line in [
            format!("{abc}  ../{SUMMARY_JSON}"),
            format!("{abc}  /dev/zero"),
            format!("{abc}  a\u{1b}]0;x\u{7}"),
            format!("{}  {SUMMARY_JSON}", &abc[1..]),
            format!("{abc} {SUMMARY_JSON}"),
        ] {
            assert!(
                matches!(
                    with_manifest(line.clone()),
                    Err(ManifestError::Malformed { line: 1 })
                ),
                "{line}"
            );
        }
        // A MANIFEST of 8 MiB of zeros (sparse) is refused by its size.
        std::fs::File::create(dir.join(MANIFEST))
            .unwrap()
            .set_len(9 << 20)
            .unwrap();
        assert!(matches!(
            files.verify_manifest(),
            Err(ManifestError::File(UntrustedError::TooLarge { .. }))
        ));
        let _ = std::fs::remove_dir_all(&dir);
    }
}

#[cfg(test)]
mod properties {
    use super::*;
    use proptest::prelude::*;

    fn line() -> impl Strategy<Value = String> {
        prop_oneof![
            // A well-formed hash and any name at all.
            ("[0-9a-f]{64}", any::<String>()).prop_map(|(hash, name)| format!("{hash}  {name}")),
            // A name from path-like pieces.
            (
                "[0-9a-f]{64}",
                proptest::collection::vec(
                    prop_oneof![
                        Just("..".to_owned()),
                        Just(".".to_owned()),
                        Just("/".to_owned()),
                        Just("\u{1b}".to_owned()),
                        Just("\0".to_owned()),
                        "[a-z.]{1,8}",
                    ],
                    1..6
                )
            )
                .prop_map(|(hash, parts)| format!("{hash}  {}", parts.concat())),
            any::<String>(),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        /// Whatever a desk writes as a MANIFEST, what is accepted names only files directly
        /// in the session folder, each once, printable as itself.
        #[test]
        fn accepted_manifest_names_stay_in_the_folder(lines in proptest::collection::vec(line(), 0..40)) {
            let text = lines.join("\n");
            if let Ok(entries) = parse_manifest(&text) {
                let folder = Path::new("/session");
                let mut seen = HashSet::new();
                for (hash, name) in entries {
                    prop_assert_eq!(hash.len(), 64);
                    prop_assert!(seen.insert(name));
                    let path = folder.join(name);
                    prop_assert_eq!(path.parent(), Some(folder));
                    prop_assert!(name != "." && name != "..");
                    prop_assert!(!name.chars().any(char::is_control));
                }
            }
        }

        /// A file is read when it is within its kind's cap and refused when over, whatever
        /// its size (sparse files: no disk used).
        #[test]
        fn files_are_read_only_within_their_cap(extra in -4096i64..4096, kind in 0usize..3) {
            let name = [SUMMARY_JSON, TIMELINE_CSV, MANIFEST][kind];
            let limit = size_limit(name);
            let size = limit.checked_add_signed(extra).unwrap();
            let dir = std::env::temp_dir().join(format!("ekspresi-cap-{}-{kind}-{extra}", std::process::id()));
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::File::create(dir.join(name)).unwrap().set_len(size).unwrap();
            let opened = SessionFiles::open(&dir).unwrap().open_file(name).map(|(_, len)| len);
            let _ = std::fs::remove_dir_all(&dir);
            if size <= limit {
                prop_assert_eq!(opened.unwrap(), size);
            } else {
                let refused = matches!(opened, Err(UntrustedError::TooLarge { .. }));
                prop_assert!(refused);
            }
        }
    }
}
