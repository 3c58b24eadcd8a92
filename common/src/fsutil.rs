//! Crash-safe file replacement shared by the trainer (checkpoints, logs) and the kiosk
//! (summaries, manifests): write a temporary file beside the target, fsync it, rename it over
//! the target, fsync the folder — a reader sees the old or the new content, never half.
//! Files are created 0640 and folders 0750 by the code itself (lesson data is about
//! children: never world-readable, whatever the umask of whoever starts the process).

use std::fs::File;
use std::io::Write;
use std::path::Path;

/// Owner read-write, group read, others nothing.
pub const FILE_MODE: u32 = 0o640;
/// Owner all, group read and enter, others nothing.
pub const DIR_MODE: u32 = 0o750;

/// Creates (or truncates) `path` with [`FILE_MODE`].
pub fn create_private(path: &Path) -> std::io::Result<File> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, FILE_MODE);
    options.open(path)
}

/// Creates `path` and its missing parents with [`DIR_MODE`].
pub fn create_private_dir_all(path: &Path) -> std::io::Result<()> {
    private_dir_builder(true).create(path)
}

/// Creates the folder `path` (which must not exist yet) with [`DIR_MODE`].
pub fn create_private_dir(path: &Path) -> std::io::Result<()> {
    private_dir_builder(false).create(path)
}

fn private_dir_builder(recursive: bool) -> std::fs::DirBuilder {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(recursive);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, DIR_MODE);
    builder
}

/// Replaces `path` with `bytes` atomically. On failure (a full card) the temporary file is
/// removed, so a failed write never holds on to the space a retry needs.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut name = path.file_name().unwrap_or_default().to_owned();
    name.push(".tmp");
    let temporary = path.with_file_name(name);
    let written = create_private(&temporary).and_then(|mut file| {
        file.write_all(bytes)?;
        file.sync_all()
    });
    if let Err(error) = written.and_then(|()| std::fs::rename(&temporary, path)) {
        let _ = std::fs::remove_file(&temporary);
        return Err(error);
    }
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        if let Ok(dir) = std::fs::File::open(dir) {
            let _ = dir.sync_all();
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn replaces_content_and_leaves_no_temporary() {
        let dir = std::env::temp_dir().join(format!("ekspresi-fsutil-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("summary.json");
        super::write_atomically(&path, b"old").unwrap();
        super::write_atomically(&path, b"new").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"new");
        assert!(!dir.join("summary.json.tmp").exists());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
            // Whatever the umask: never readable by others, always by the owner.
            assert_eq!(mode & 0o007, 0, "{mode:o}");
            assert_eq!(mode & 0o600, 0o600, "{mode:o}");
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
}
