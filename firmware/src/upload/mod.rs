//! `kiosk upload`: delivers this card's finished lessons to a directory or an SSH server,
//! for the teacher's `kiosk report`.
//!
//! For each session folder with `COMPLETE` and without `UPLOADED` (the running lesson has
//! no `COMPLETE`, so it is never touched), in start order:
//! 1. copy every file but `COMPLETE` to `<destination>/<desk>/<session>/` ([`Transport`]);
//! 2. verify the copy against its `MANIFEST` *at the destination*; on a mismatch copy again
//!    comparing contents, and verify once more;
//! 3. copy `COMPLETE` last, so a half-delivered session never looks finished there;
//! 4. only then write `UPLOADED` on the card (retention may free it from then on).
//!
//! A cut at any point is resumed by the next run: step 1 copies only what is missing or
//! different (rsync keeps a cut file in `.rsync-partial`), and a session delivered but not
//! yet marked is verified and marked without copying anything. Encrypted video is copied as
//! the sealed segments it is. One upload runs at a time (a lock in the data directory).
//!
//! This runs in its own process and systemd unit (`ekspresi-upload.service`), the only one
//! with network access: the analysis service that sees the camera keeps `PrivateNetwork=yes`.

mod destination;
mod transport;

use std::path::{Path, PathBuf};

pub use destination::{Destination, HostKey, SshTarget};
pub use transport::{SshAccess, Transport};

use crate::record::session::{session_dirs, COMPLETE, UPLOADED};

/// What can stop an upload.
#[derive(Debug, thiserror::Error)]
pub enum UploadError {
    #[error("upload destination {destination:?}: {reason}")]
    Destination { destination: String, reason: String },
    #[error("upload.host_key {0:?}…: not a public key line (`ssh-ed25519 AAAA…`, the server's .pub file)")]
    HostKey(String),
    #[error("an ssh:// destination needs the server's host key in the config (upload.host_key): it is pinned, never learnt")]
    NoHostKey,
    #[error("path {0} cannot be passed to ssh (no spaces or quotes)")]
    UnsafePath(PathBuf),
    #[error("cannot write the pinned known_hosts file: {0}")]
    KnownHosts(std::io::Error),
    #[error("cannot run {program} (is it installed?): {source}")]
    Spawn {
        program: &'static str,
        source: std::io::Error,
    },
    #[error("rsync failed: {0}")]
    Rsync(String),
    #[error("the copy of {session} does not verify at the destination: {reason}")]
    Verify { session: String, reason: String },
    #[error("another upload is running (lock {0})")]
    Busy(PathBuf),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> UploadError + '_ {
    move |source| UploadError::Io {
        path: path.to_owned(),
        source,
    }
}

/// A finished session on the card, not yet uploaded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingSession {
    pub desk: String,
    pub name: String,
    pub path: PathBuf,
}

/// What one run did.
#[derive(Debug, Default)]
pub struct UploadOutcome {
    /// Sessions delivered and marked in this run.
    pub uploaded: Vec<PendingSession>,
    /// Sessions already marked uploaded, left alone.
    pub already_uploaded: usize,
    /// Unfinished sessions (the running lesson), left alone.
    pub unfinished: usize,
    /// Sessions that could not be delivered this run, each with why; the ones after them
    /// were still tried (one damaged lesson once stopped every later upload of the desk).
    pub failed: Vec<(PendingSession, String)>,
}

/// Every complete, not uploaded session on the card ([`session_dirs`]: every desk, in
/// start order); also counts the ones skipped.
pub fn pending_sessions(
    data_dir: &Path,
) -> Result<(Vec<PendingSession>, UploadOutcome), UploadError> {
    let mut pending = Vec::new();
    let mut skipped = UploadOutcome::default();
    for session in session_dirs(data_dir).map_err(io_error(data_dir))? {
        if !session.join(COMPLETE).exists() {
            skipped.unfinished += 1;
        } else if session.join(UPLOADED).exists() {
            skipped.already_uploaded += 1;
        } else {
            let name = |path: &Path| {
                path.file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default()
            };
            let desk = session.parent().map(name).unwrap_or_default();
            // Only folders the kiosk names (safe path components) go into a remote path.
            if !crate::config::is_safe_name(&desk) || !crate::config::is_safe_name(&name(&session))
            {
                tracing::warn!(session = %session.display(), "not a kiosk session folder; not uploaded");
                continue;
            }
            pending.push(PendingSession {
                desk,
                name: name(&session),
                path: session,
            });
        }
    }
    Ok((pending, skipped))
}

/// Uploads every pending session of `data_dir` through `transport`; `progress` is told of
/// each session as it is done. Stops at the first failure: what was delivered stays marked,
/// and the next run resumes from there.
pub fn upload_all(
    data_dir: &Path,
    transport: &Transport,
    mut progress: impl FnMut(&PendingSession, usize, usize),
) -> Result<UploadOutcome, UploadError> {
    transport.destination().check_reachable()?;
    let _lock = lock(data_dir)?;
    let (pending, mut outcome) = pending_sessions(data_dir)?;
    for (index, session) in pending.iter().enumerate() {
        match upload_one(session, transport) {
            Ok(()) => outcome.uploaded.push(session.clone()),
            Err(error) => {
                tracing::warn!(session = %session.path.display(), %error, "not uploaded");
                outcome.failed.push((session.clone(), error.to_string()));
            }
        }
        progress(session, index + 1, pending.len());
    }
    Ok(outcome)
}

fn upload_one(session: &PendingSession, transport: &Transport) -> Result<(), UploadError> {
    let (path, desk, name) = (&session.path, &session.desk, &session.name);
    transport.copy_contents(path, desk, name, false)?;
    if let Err(first) = transport.verify_at_destination(desk, name) {
        // A same-size, same-time file that differs (a cut or damaged earlier copy) passes
        // rsync's quick check: compare contents this time.
        tracing::warn!(%first, "copy did not verify; copying again by content");
        transport.copy_contents(path, desk, name, true)?;
        transport.verify_at_destination(desk, name)?;
    }
    transport.copy_complete_marker(path, desk, name)?;
    let marker = format!(
        "{}\n{}\n",
        transport.destination(),
        humantime::format_rfc3339_seconds(std::time::SystemTime::now())
    );
    let marker_path = path.join(UPLOADED);
    ekspresi_common::fsutil::write_atomically(&marker_path, marker.as_bytes())
        .map_err(io_error(&marker_path))?;
    tracing::info!(session = %path.display(), "uploaded");
    Ok(())
}

/// One upload at a time: an exclusive lock on `data_dir/upload.lock`, released on exit
/// (also when the process is killed).
fn lock(data_dir: &Path) -> Result<std::fs::File, UploadError> {
    let path = data_dir.join("upload.lock");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(io_error(&path))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => Err(UploadError::Busy(path)),
        Err(std::fs::TryLockError::Error(source)) => Err(UploadError::Io { path, source }),
    }
}
