//! One lesson's folder on the SD card, laid out for a later uploader:
//! `<data_dir>/sessions/<desk-id>/<start-time>/` holding the video, the summaries, a
//! `MANIFEST` (SHA-256 and size of every file) and, written last, a `COMPLETE` marker: an
//! uploader takes only folders with `COMPLETE`.
//!
//! At start-up [`recover_unfinished`] finishes folders a power cut left behind: it cuts the
//! video back to its last whole fragment (or, for encrypted video, drops the one segment
//! left unfinished) and completes the folder, marked as interrupted.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use super::summary::write_atomically;
use crate::mp4::repair;

pub const VIDEO: &str = "video.mp4";
pub const SUMMARY_TXT: &str = "summary.txt";
pub const SUMMARY_JSON: &str = "summary.json";
pub const TIMELINE_CSV: &str = "timeline.csv";
pub const TIMELINE_PNG: &str = "timeline.png";
pub const MANIFEST: &str = "MANIFEST";
pub const COMPLETE: &str = "COMPLETE";

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
        write_atomically(&self.file(MANIFEST), manifest(&self.path)?.as_bytes())?;
        write_atomically(&self.file(COMPLETE), format!("{note}\n").as_bytes())
    }
}

/// `sha256  name` per regular file, sorted by name (MANIFEST, COMPLETE and temporary files
/// excluded): the format of `sha256sum`, so `sha256sum -c MANIFEST` checks a session after
/// upload. Files are hashed as streams, in constant memory (an all-day video is gigabytes).
pub fn manifest(dir: &Path) -> std::io::Result<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)?
        .filter_map(|e| e.ok())
        .filter(|e| e.file_type().map(|t| t.is_file()).unwrap_or(false))
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n != MANIFEST && n != COMPLETE && !n.contains(".tmp"))
        .collect();
    names.sort();
    let mut out = String::new();
    for name in names {
        let mut hasher = Sha256::new();
        std::io::copy(&mut std::fs::File::open(dir.join(&name))?, &mut hasher)?;
        let digest = hasher.finalize();
        let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
        let _ = writeln!(out, "{hex}  {name}");
    }
    Ok(out)
}

/// Finishes every session under `data_dir` that has no `COMPLETE` marker; returns them.
pub fn recover_unfinished(data_dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut recovered = Vec::new();
    let sessions = data_dir.join("sessions");
    let Ok(desks) = std::fs::read_dir(&sessions) else {
        return Ok(recovered);
    };
    for desk in desks.filter_map(|e| e.ok()).filter(|e| e.path().is_dir()) {
        for session in std::fs::read_dir(desk.path())?.filter_map(|e| e.ok()) {
            let dir = SessionDir {
                path: session.path(),
            };
            if !dir.path.is_dir() || dir.is_complete() {
                continue;
            }
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
            tracing::warn!(session = %dir.path.display(), %note, "recovered an unfinished session");
            dir.complete(&note)?;
            recovered.push(dir.path);
        }
    }
    Ok(recovered)
}

#[cfg(test)]
mod tests {
    use super::*;

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

        // A lesson starting in the same second gets its own folder, never the finished one.
        let next = SessionDir::create(&root, "desk-1", "2026-11-28T09:00:00Z").unwrap();
        assert!(next
            .path
            .ends_with("sessions/desk-1/2026-11-28T09-00-00Z-2"));
        assert!(!next.is_complete());
        let _ = std::fs::remove_dir_all(&root);
    }
}
