//! One lesson's folder on the SD card, laid out for a later uploader:
//! `<data_dir>/sessions/<desk-id>/<start-time>/` holding the video, the summaries, a
//! `MANIFEST` (the SHA-256 of every file, as `sha256sum` writes it) and, written last, a
//! `COMPLETE` marker: an uploader takes only folders with `COMPLETE`, and marks the ones it
//! has delivered with `UPLOADED` (neither marker is in the manifest).
//!
//! At start-up [`recover_unfinished`] finishes folders a power cut left behind: it cuts the
//! video back to its last whole fragment (or, for encrypted video, drops the one segment
//! left unfinished), rebuilds the summaries from the per-second log (`record::seconds`) and
//! completes the folder, marked as interrupted; temporary files a cut left anywhere are
//! removed.

use std::fmt::Write as _;
use std::io::Read as _;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use super::summary::write_atomically;
use super::untrusted::SessionFiles;
use crate::mp4::repair;

pub const VIDEO: &str = "video.mp4";
pub const SUMMARY_TXT: &str = "summary.txt";
pub const SUMMARY_JSON: &str = "summary.json";
pub const TIMELINE_CSV: &str = "timeline.csv";
pub const TIMELINE_PNG: &str = "timeline.png";
/// The per-second log (see `record::seconds`).
pub const SECONDS_CSV: &str = "seconds.csv";
pub const MANIFEST: &str = "MANIFEST";
pub const COMPLETE: &str = "COMPLETE";
/// Written by `kiosk upload` once the destination's copy has verified.
pub const UPLOADED: &str = "UPLOADED";

pub use super::untrusted::ManifestError;

/// A session folder.
#[derive(Debug, Clone)]
pub struct SessionDir {
    pub path: PathBuf,
}

impl SessionDir {
    /// Creates `<data_dir>/sessions/<desk>/<start>/` (`start` made safe for file names).
    pub fn create(data_dir: &Path, desk_id: &str, start: &str) -> std::io::Result<Self> {
        let folder: String = start
            .chars()
            .map(|c| if c == ':' { '-' } else { c })
            .collect();
        let desk_dir = data_dir.join("sessions").join(desk_id);
        ekspresi_common::fsutil::create_private_dir_all(&desk_dir)?;
        // A new folder every time, never an existing one: two lessons can start within the
        // same second (a replayed file split into lessons), and a session is never reopened.
        for attempt in 1..=1000 {
            let name = match attempt {
                1 => folder.clone(),
                n => format!("{folder}-{n}"),
            };
            let path = desk_dir.join(name);
            match ekspresi_common::fsutil::create_private_dir(&path) {
                Ok(()) => return Ok(Self { path }),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(e),
            }
        }
        Err(std::io::Error::new(
            std::io::ErrorKind::AlreadyExists,
            format!("1000 session folders named {folder} already exist"),
        ))
    }

    pub fn file(&self, name: &str) -> PathBuf {
        self.path.join(name)
    }

    pub fn is_complete(&self) -> bool {
        self.file(COMPLETE).exists()
    }

    /// Writes the manifest of every file present, then the `COMPLETE` marker.
    pub fn complete(&self, note: &str) -> std::io::Result<()> {
        self.complete_feeding(note, &mut || {})
    }

    /// [`Self::complete`], calling `beat` every [`BEAT_EVERY_BYTES`] hashed: an all-day
    /// video takes longer to hash on a Pi than systemd's watchdog waits.
    pub fn complete_feeding(&self, note: &str, beat: &mut dyn FnMut()) -> std::io::Result<()> {
        write_atomically(
            &self.file(MANIFEST),
            manifest_feeding(&self.path, beat)?.as_bytes(),
        )?;
        write_atomically(&self.file(COMPLETE), format!("{note}\n").as_bytes())
    }
}

/// `sha256  name` per regular file, sorted by name (MANIFEST, COMPLETE and temporary files
/// excluded): the format of `sha256sum`, so `sha256sum -c MANIFEST` checks a session after
/// upload. Files are hashed as streams, in constant memory (an all-day video is gigabytes).
pub fn manifest(dir: &Path) -> std::io::Result<String> {
    manifest_feeding(dir, &mut || {})
}

/// Bytes hashed between two calls of a manifest's `beat` (a few hundred ms on a Pi 4).
pub const BEAT_EVERY_BYTES: usize = 16 << 20;

fn manifest_feeding(dir: &Path, beat: &mut dyn FnMut()) -> std::io::Result<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)?
        .filter_map(|e| e.ok())
        .filter(|e| e.file_type().map(|t| t.is_file()).unwrap_or(false))
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n != MANIFEST && n != COMPLETE && n != UPLOADED && !n.contains(".tmp"))
        .collect();
    names.sort();
    let mut out = String::new();
    for name in names {
        let hex = sha256_hex(&dir.join(&name), beat)?;
        let _ = writeln!(out, "{hex}  {name}");
    }
    Ok(out)
}

/// The SHA-256 of a file, read as a stream, in lower-case hex; `beat` is called every
/// [`BEAT_EVERY_BYTES`].
fn sha256_hex(path: &Path, beat: &mut dyn FnMut()) -> std::io::Result<String> {
    let mut hasher = Sha256::new();
    let mut file = std::fs::File::open(path)?;
    let mut buffer = vec![0u8; 1 << 20];
    let mut since_beat = 0;
    loop {
        let read = match file.read(&mut buffer) {
            Ok(0) => break,
            Ok(read) => read,
            Err(error) if error.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(error) => return Err(error),
        };
        hasher.update(&buffer[..read]);
        since_beat += read;
        if since_beat >= BEAT_EVERY_BYTES {
            beat();
            since_beat = 0;
        }
    }
    Ok(hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect())
}

/// Checks every file `dir/MANIFEST` lists against its SHA-256 (what `sha256sum -c MANIFEST`
/// does) through the trust boundary ([`super::untrusted`]), and returns the names listed.
pub fn verify_manifest(dir: &Path) -> Result<Vec<String>, ManifestError> {
    Ok(SessionFiles::open(dir)
        .map_err(ManifestError::File)?
        .verify_manifest()?
        .names)
}

/// Finishes every session under `data_dir` that has no `COMPLETE` marker, and removes the
/// temporary files (`*.tmp`) a cut left in any session; returns the sessions finished. A
/// session that cannot be finished now (a full card) is logged and left for the next start:
/// it never stops the kiosk from starting.
pub fn recover_unfinished(data_dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    recover_unfinished_feeding(data_dir, &mut || {})
}

/// [`recover_unfinished`], calling `beat` per session and while hashing (the kiosk feeds
/// systemd's watchdog with it).
pub fn recover_unfinished_feeding(
    data_dir: &Path,
    beat: &mut dyn FnMut(),
) -> std::io::Result<Vec<PathBuf>> {
    let mut recovered = Vec::new();
    for path in session_dirs(data_dir)? {
        beat();
        let dir = SessionDir { path };
        if !dir.is_complete() {
            match recover(&dir, beat) {
                Ok(()) => recovered.push(dir.path.clone()),
                Err(error) => tracing::error!(session = %dir.path.display(), %error,
                    "cannot finish an interrupted session now; will retry at the next start"),
            }
        }
        remove_temporaries(&dir.path);
    }
    Ok(recovered)
}

/// Every session folder on the card, `data_dir/sessions/<desk>/<session>/`, every desk
/// (a renamed desk keeps its old lessons), sorted by desk then name (= start time). None
/// when the card has no sessions yet.
pub fn session_dirs(data_dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let sessions = data_dir.join("sessions");
    if !sessions.exists() {
        return Ok(Vec::new());
    }
    let mut found = Vec::new();
    for desk in sorted_subdirs(&sessions)? {
        found.extend(sorted_subdirs(&desk)?);
    }
    Ok(found)
}

fn sorted_subdirs(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(dir)?
        .filter_map(|entry| entry.ok())
        .filter(|entry| entry.file_type().is_ok_and(|t| t.is_dir()))
        .map(|entry| entry.path())
        .collect();
    dirs.sort();
    Ok(dirs)
}

/// Cuts an interrupted session's video back to what is whole and completes the folder.
fn recover(dir: &SessionDir, beat: &mut dyn FnMut()) -> std::io::Result<()> {
    let video_path = dir.file(VIDEO);
    let mut note = String::from("interrupted (recovered at start-up)");
    if video_path.exists() {
        match repair(&video_path) {
            Ok(repair) if repair.kept_len == 0 => {
                let _ = std::fs::remove_file(&video_path);
                note.push_str("; no whole video fragment had been written, video removed");
            }
            Ok(repair) => {
                let _ = write!(
                    note,
                    "; video cut from {} to {} bytes ({} fragments)",
                    repair.original_len, repair.kept_len, repair.fragments
                );
            }
            Err(error) => {
                let _ = write!(note, "; video could not be repaired: {error}");
            }
        }
    }
    match crate::seal::remove_unfinished(&dir.path) {
        Ok(0) => {}
        Ok(removed) => {
            let kept = crate::seal::segments(&dir.path).map_or(0, |s| s.len());
            let _ = write!(
                note,
                "; encrypted video: {kept} segments kept, {removed} unfinished removed"
            );
        }
        Err(error) => {
            let _ = write!(note, "; unfinished encrypted segment not removed: {error}");
        }
    }
    match super::seconds::rebuild_summaries(dir) {
        Ok(Some(rebuilt)) => {
            let _ = write!(note, "; {rebuilt}");
        }
        Ok(None) => note.push_str("; summary as last refreshed"),
        Err(error) => {
            let _ = write!(note, "; summary as last refreshed (not rebuilt: {error:#})");
        }
    }
    tracing::warn!(session = %dir.path.display(), %note, "recovered an unfinished session");
    dir.complete_feeding(&note, beat)
}

/// Removes `*.tmp` files (a write cut before its rename); they are never in a MANIFEST.
fn remove_temporaries(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.filter_map(|e| e.ok()) {
        if entry.file_name().to_string_lossy().ends_with(".tmp") {
            match std::fs::remove_file(entry.path()) {
                Ok(()) => {
                    tracing::info!(file = %entry.path().display(), "removed a leftover temporary file")
                }
                Err(error) => {
                    tracing::warn!(file = %entry.path().display(), %error, "cannot remove a leftover temporary file")
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn completing_a_large_session_feeds_the_watchdog_while_it_hashes() {
        let root = std::env::temp_dir().join(format!("ekspresi-beat-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        let session = SessionDir::create(&root, "desk-1", "2026-11-28T09:00:00Z").unwrap();
        // A sparse 70 MiB "video": reads as zeros, costs no disk.
        let video = std::fs::File::create(session.file(VIDEO)).unwrap();
        video.set_len(70 << 20).unwrap();
        let mut beats = 0;
        session.complete_feeding("ok", &mut || beats += 1).unwrap();
        assert_eq!(beats, (70 << 20) / BEAT_EVERY_BYTES);
        let manifest = std::fs::read_to_string(session.file(MANIFEST)).unwrap();
        assert!(manifest.ends_with("  video.mp4\n"), "{manifest}");
        let _ = std::fs::remove_dir_all(&root);
    }

    #[test]
    fn manifest_lists_files_with_hashes_and_complete_comes_last() {
        let root = std::env::temp_dir().join(format!("ekspresi-session-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        let session = SessionDir::create(&root, "desk-1", "2026-11-28T09:00:00Z").unwrap();
        assert!(session
            .path
            .ends_with("sessions/desk-1/2026-11-28T09-00-00Z"));
        std::fs::write(session.file(SUMMARY_TXT), b"abc").unwrap();
        session.complete("ok").unwrap();
        let manifest = std::fs::read_to_string(session.file(MANIFEST)).unwrap();
        // SHA-256 of "abc".
        assert_eq!(
            manifest,
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad  summary.txt\n"
        );
        assert!(session.is_complete());
        assert_eq!(verify_manifest(&session.path).unwrap(), ["summary.txt"]);
        std::fs::write(session.file(SUMMARY_TXT), b"abd").unwrap();
        assert!(matches!(
            verify_manifest(&session.path),
            Err(ManifestError::Mismatch { .. })
        ));
        std::fs::remove_file(session.file(SUMMARY_TXT)).unwrap();
        assert!(matches!(
            verify_manifest(&session.path),
            Err(ManifestError::File(
                super::super::untrusted::UntrustedError::Missing { .. }
            ))
        ));
        std::fs::write(session.file(MANIFEST), "abc  ../etc/passwd\n").unwrap();
        assert!(matches!(
            verify_manifest(&session.path),
            Err(ManifestError::Malformed { line: 1 })
        ));

        // A lesson starting in the same second gets its own folder, never the finished one.
        let next = SessionDir::create(&root, "desk-1", "2026-11-28T09:00:00Z").unwrap();
        assert!(next
            .path
            .ends_with("sessions/desk-1/2026-11-28T09-00-00Z-2"));
        assert!(!next.is_complete());
        let _ = std::fs::remove_dir_all(&root);
    }
}
