//! Helpers the firmware's integration tests share.

use std::path::PathBuf;

pub fn manifest_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// An empty folder `target/test-scratch/<name>` (emptied first).
pub fn scratch(name: &str) -> PathBuf {
    let dir = manifest_dir().join("../target/test-scratch").join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}
