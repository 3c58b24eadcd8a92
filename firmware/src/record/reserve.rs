//! Space held back for summaries: while the card has room, the data directory keeps a file of
//! [`RESERVE_BYTES`] really allocated on the card. When a lesson must start and retention
//! cannot bring free space back over the floor — a card full of something retention may not
//! touch: summaries, another program's files — the reserve is given up, so the lesson's
//! folder, its summaries, its per-second log, `MANIFEST` and `COMPLETE` still fit. A lesson's
//! aggregates are a few hundred kB (a 45-minute lesson's timeline and `seconds.csv` are about
//! 100 kB each), so 1 MiB covers one with room to spare. The reserve comes back at a later
//! start, once there is room for it again.

use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};

use fs4::fs_std::FileExt;

/// The reserve's file name, in the data directory (outside `sessions/`, never uploaded).
pub const RESERVE_FILE: &str = ".summary-reserve";

/// What the reserve holds back.
pub const RESERVE_BYTES: u64 = 1024 * 1024;

fn path(data_dir: &Path) -> PathBuf {
    data_dir.join(RESERVE_FILE)
}

/// Free space on the card of `data_dir`, counting the reserve as free (the kiosk gives it
/// up whenever a lesson needs it): what retention and the video's floor are measured against.
pub fn free_space(data_dir: &Path) -> std::io::Result<u64> {
    let available = fs4::available_space(data_dir)?;
    let reserved = if held(data_dir) { RESERVE_BYTES } else { 0 };
    Ok(available.saturating_add(reserved))
}

/// True when the reserve is in place.
pub fn held(data_dir: &Path) -> bool {
    std::fs::metadata(path(data_dir)).is_ok_and(|m| m.len() >= RESERVE_BYTES)
}

/// Puts the reserve in place when it is missing and the card can spare it on top of
/// `floor_bytes`; true when it is held afterwards. A half-made reserve is removed again.
pub fn ensure(data_dir: &Path, floor_bytes: u64) -> std::io::Result<bool> {
    if held(data_dir) {
        return Ok(true);
    }
    if !data_dir.is_dir() {
        return Ok(false);
    }
    let available = fs4::available_space(data_dir)?;
    if available < floor_bytes.saturating_add(RESERVE_BYTES) {
        return Ok(false);
    }
    let file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(path(data_dir))?;
    // allocate(), not set_len(): a sparse file would hold back nothing.
    match allocate(&file) {
        Ok(()) => Ok(true),
        Err(error) => {
            drop(file);
            let _ = std::fs::remove_file(path(data_dir));
            Err(error)
        }
    }
}

fn allocate(file: &File) -> std::io::Result<()> {
    file.allocate(RESERVE_BYTES)?;
    file.sync_all()
}

/// Gives the reserve up (a lesson needs its room); true when there was one.
pub fn release(data_dir: &Path) -> std::io::Result<bool> {
    match std::fs::remove_file(path(data_dir)) {
        Ok(()) => Ok(true),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(error) => Err(error),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_reserve_is_made_only_with_room_and_given_up_once() {
        let dir = tempfile::tempdir().unwrap();
        assert!(!held(dir.path()));
        assert!(ensure(dir.path(), 0).unwrap());
        assert!(held(dir.path()));
        let file = File::open(path(dir.path())).unwrap();
        assert!(
            file.allocated_size().unwrap() >= RESERVE_BYTES,
            "the reserve's blocks are allocated, not sparse"
        );
        assert!(release(dir.path()).unwrap());
        assert!(!release(dir.path()).unwrap());
        assert!(!held(dir.path()));
        // A floor the disk cannot spare on top: no reserve.
        assert!(!ensure(dir.path(), u64::MAX).unwrap());
        assert!(!held(dir.path()));
        // A data directory that does not exist yet: none either, and no error.
        assert!(!ensure(&dir.path().join("missing"), 0).unwrap());
    }
}
