//! Crash-safe writes for training runs: [`ekspresi_common::fsutil::write_atomically`] with
//! the path in the error.

use std::path::Path;

use anyhow::{Context, Result};

/// Replaces `path` with `bytes` atomically.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> Result<()> {
    ekspresi_common::fsutil::write_atomically(path, bytes)
        .with_context(|| format!("cannot write {}", path.display()))
}
