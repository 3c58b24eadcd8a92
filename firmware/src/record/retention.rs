//! Retention, like a dashcam's: when the card's free space falls under the floor
//! (`min_free_mib`), the oldest videos go first — of sessions already uploaded, then of the
//! other complete sessions — until the floor is met. Never a summary, never a timeline, never
//! the running lesson's video: the analysis is what the card exists to keep, and it is a few
//! hundred kB a lesson against a video's hundreds of MB.
//!
//! A session whose video is removed gets a `VIDEO_REMOVED` note (what, when, why) and a fresh
//! `MANIFEST`, so it still verifies — and uploads — as what it now is.

use std::path::{Path, PathBuf};

use super::session::{manifest, session_dirs, COMPLETE, MANIFEST, UPLOADED, VIDEO};
use ekspresi_common::fsutil::write_atomically;

/// Written into a session whose video retention removed.
pub const VIDEO_REMOVED: &str = "VIDEO_REMOVED";

/// One session's video, removed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Freed {
    pub session: PathBuf,
    pub bytes: u64,
    pub was_uploaded: bool,
}

/// Removes the oldest videos (uploaded sessions first) until `available()` is at least
/// `floor_bytes`, sparing `running`. Returns what it removed; stops early when nothing is
/// left to remove (the caller then stops recording).
pub fn free_space(
    data_dir: &Path,
    floor_bytes: u64,
    running: Option<&Path>,
    available: impl Fn() -> std::io::Result<u64>,
) -> std::io::Result<Vec<Freed>> {
    let mut freed = Vec::new();
    if available()? >= floor_bytes {
        return Ok(freed);
    }
    for candidate in candidates(data_dir, running)? {
        let bytes = remove_video(&candidate.path, candidate.uploaded)?;
        tracing::warn!(session = %candidate.path.display(), bytes, "card low on space: removed the video of an older lesson");
        freed.push(Freed {
            session: candidate.path,
            bytes,
            was_uploaded: candidate.uploaded,
        });
        if available()? >= floor_bytes {
            break;
        }
    }
    Ok(freed)
}

struct Candidate {
    path: PathBuf,
    uploaded: bool,
}

/// Complete sessions that still have a video, uploaded ones first, each group oldest first
/// (folder names are start times).
fn candidates(data_dir: &Path, running: Option<&Path>) -> std::io::Result<Vec<Candidate>> {
    let mut found = Vec::new();
    for path in session_dirs(data_dir)? {
        let is_running = running.is_some_and(|r| r == path);
        if is_running || !path.join(COMPLETE).exists() || video_files(&path)?.is_empty() {
            continue;
        }
        found.push(Candidate {
            uploaded: path.join(UPLOADED).exists(),
            path,
        });
    }
    found.sort_by(|a, b| (!a.uploaded, a.path.file_name()).cmp(&(!b.uploaded, b.path.file_name())));
    Ok(found)
}

/// The session's video: `video.mp4`, or its encrypted segments.
fn video_files(session: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut files = crate::seal::segments(session)?;
    let plain = session.join(VIDEO);
    if plain.exists() {
        files.push(plain);
    }
    Ok(files)
}

/// Deletes the session's video, notes it, and rewrites its MANIFEST; returns the bytes freed.
fn remove_video(session: &Path, uploaded: bool) -> std::io::Result<u64> {
    let mut bytes = 0u64;
    let files = video_files(session)?;
    for file in &files {
        bytes = bytes.saturating_add(std::fs::metadata(file).map_or(0, |m| m.len()));
        std::fs::remove_file(file)?;
    }
    let note = format!(
        "video removed at {} to keep the card's free space above its floor ({} files, {bytes} bytes{}); summaries kept\n",
        humantime::format_rfc3339_seconds(std::time::SystemTime::now()),
        files.len(),
        if uploaded { "; it had been uploaded" } else { "; it had not been uploaded" },
    );
    write_atomically(&session.join(VIDEO_REMOVED), note.as_bytes())?;
    write_atomically(&session.join(MANIFEST), manifest(session)?.as_bytes())?;
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::session::{verify_manifest, SessionDir, SUMMARY_JSON};
    use std::cell::Cell;

    fn session(root: &Path, start: &str, video_bytes: usize, uploaded: bool) -> PathBuf {
        let dir = SessionDir::create(root, "desk-1", start).unwrap();
        std::fs::write(dir.file(VIDEO), vec![7u8; video_bytes]).unwrap();
        std::fs::write(dir.file(SUMMARY_JSON), b"{}").unwrap();
        dir.complete("ok").unwrap();
        if uploaded {
            std::fs::write(dir.file(UPLOADED), b"x").unwrap();
        }
        dir.path
    }

    #[test]
    fn uploaded_videos_go_first_then_the_oldest_and_never_the_running_one() {
        let root = std::env::temp_dir().join(format!("ekspresi-retention-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        let old = session(&root, "2026-12-01T08:00:00Z", 1000, false);
        let uploaded = session(&root, "2026-12-01T09:00:00Z", 1000, true);
        let newer = session(&root, "2026-12-01T10:00:00Z", 1000, false);
        let running = SessionDir::create(&root, "desk-1", "2026-12-01T11:00:00Z").unwrap();
        std::fs::write(running.file(VIDEO), vec![0u8; 1000]).unwrap();
        // A simulated card: 500 bytes free, plus what is deleted.
        let free = Cell::new(500u64);
        let available = || {
            let on_card: u64 = [&old, &uploaded, &newer, &running.path]
                .iter()
                .map(|s| std::fs::metadata(s.join(VIDEO)).map_or(0, |m| m.len()))
                .sum();
            Ok(free.get() + 4000 - on_card)
        };
        let freed = free_space(&root, 2200, Some(&running.path), available).unwrap();
        let order: Vec<&Path> = freed.iter().map(|f| f.session.as_path()).collect();
        assert_eq!(
            order,
            [uploaded.as_path(), old.as_path()],
            "uploaded first, then the oldest"
        );
        assert!(newer.join(VIDEO).exists() && running.file(VIDEO).exists());
        for dir in [&old, &uploaded] {
            assert!(
                dir.join(SUMMARY_JSON).exists(),
                "summaries are never removed"
            );
            assert!(dir.join(VIDEO_REMOVED).exists());
            assert_eq!(verify_manifest(dir).unwrap(), [VIDEO_REMOVED, SUMMARY_JSON]);
        }
        // Enough space: nothing is touched.
        free.set(10_000);
        assert!(free_space(&root, 2200, None, available).unwrap().is_empty());
        let _ = std::fs::remove_dir_all(&root);
    }
}
