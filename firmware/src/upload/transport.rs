//! Moving files with the system's `rsync` (over `ssh` for a server) and checking the copy
//! where it landed. rsync is what every school's IT already trusts for this: it resumes a
//! cut transfer (`--partial-dir`), copies nothing that is already there, and speaks to any
//! SSH server; we only drive it, we do not reimplement it.
//!
//! SSH is locked down: key login only (`BatchMode`), the config's identity only, no user
//! or system ssh config, and the host key pinned by the config (a `known_hosts` file of one
//! line, written for this run), so a desk never trusts a server it was not told about.

use std::path::{Path, PathBuf};
use std::process::Command;

use super::destination::{ssh_session_path, Destination, HostKey, SshTarget};
use super::UploadError;
use crate::record::session::{verify_manifest, COMPLETE, UPLOADED};
use crate::record::untrusted::MAX_MANIFEST_ENTRIES;

/// SSH settings for `ssh://` destinations.
pub struct SshAccess {
    /// The desk's private key.
    pub identity: PathBuf,
    /// The server's pinned host key.
    pub host_key: HostKey,
}

/// rsync and ssh, ready for one destination.
pub struct Transport {
    destination: Destination,
    /// `-e` for rsync and the prefix of remote commands (ssh destinations only).
    ssh_command: Option<Vec<String>>,
    /// Holds the one-line known_hosts file for as long as the transport lives.
    _known_hosts: Option<tempfile::NamedTempFile>,
}

impl Transport {
    pub fn new(destination: Destination, ssh: Option<SshAccess>) -> Result<Self, UploadError> {
        let Destination::Ssh(target) = &destination else {
            return Ok(Self {
                destination,
                ssh_command: None,
                _known_hosts: None,
            });
        };
        let access = ssh.ok_or(UploadError::NoHostKey)?;
        let known_hosts = write_known_hosts(&access.host_key, target)?;
        let ssh_command = ssh_command(target, &access.identity, known_hosts.path())?;
        Ok(Self {
            destination,
            ssh_command: Some(ssh_command),
            _known_hosts: Some(known_hosts),
        })
    }

    pub fn destination(&self) -> &Destination {
        &self.destination
    }

    /// Copies the session's files, all but the `COMPLETE` marker (and our `UPLOADED`), so
    /// that a reader at the destination never takes a half-copied session for a finished
    /// one. With `checksum`, files are compared by content, not size and time (after a
    /// verification failed).
    pub fn copy_contents(
        &self,
        session: &Path,
        desk: &str,
        name: &str,
        checksum: bool,
    ) -> Result<(), UploadError> {
        let mut args = vec![
            "--recursive".to_owned(),
            "--times".into(),
            // The card's modes: owner read-write, group read, others nothing.
            "--chmod=D0750,F0640".into(),
            "--partial-dir=.rsync-partial".into(),
            "--mkpath".into(),
            // The copy mirrors the card: what a cut run left (rsync's temporary files) goes.
            "--delete".into(),
            "--timeout=120".into(),
            format!("--exclude={COMPLETE}"),
            format!("--exclude={UPLOADED}"),
            "--exclude=*.tmp".into(),
        ];
        if checksum {
            args.push("--checksum".into());
        }
        args.push("--".into());
        args.push(format!("{}/", local_operand(session)?));
        args.push(format!("{}/", self.destination.session_target(desk, name)));
        self.rsync(&args)
    }

    /// Copies the `COMPLETE` marker last, once the copy has verified.
    pub fn copy_complete_marker(
        &self,
        session: &Path,
        desk: &str,
        name: &str,
    ) -> Result<(), UploadError> {
        let target = self.destination.session_target(desk, name);
        self.rsync(&[
            "--times".into(),
            "--chmod=F0640".into(),
            "--timeout=120".into(),
            "--".into(),
            local_operand(&session.join(COMPLETE))?,
            format!("{target}/{COMPLETE}"),
        ])
    }

    /// Checks the copy against its MANIFEST *at the destination*: in place for a directory,
    /// with the server's own `sha256sum --check` over SSH.
    pub fn verify_at_destination(&self, desk: &str, name: &str) -> Result<(), UploadError> {
        let failed = |reason: String| UploadError::Verify {
            session: name.to_owned(),
            reason,
        };
        match (&self.destination, &self.ssh_command) {
            (Destination::Ssh(target), Some(ssh)) => {
                let dir = ssh_session_path(target, desk, name);
                // The path has only [A-Za-z0-9/._-] (Destination::parse, safe names), so the
                // remote shell needs no quoting.
                let mut command = Command::new(&ssh[0]);
                command
                    .args(&ssh[1..])
                    .arg(format!("{}@{}", target.user, target.host))
                    .arg(format!("cd {dir} && {}", server_check()));
                run(command, "ssh")?.map_err(failed)
            }
            (Destination::Ssh(_), None) => Err(UploadError::NoHostKey),
            (Destination::Dir(root), _) => verify_manifest(&root.join(desk).join(name))
                .map(|_| ())
                .map_err(|e| failed(e.to_string())),
        }
    }

    /// Runs rsync with `args`, whose operands come after a `--`: nothing from a config or a
    /// card is read as an option.
    fn rsync(&self, args: &[String]) -> Result<(), UploadError> {
        let mut command = Command::new("rsync");
        if let Some(ssh) = &self.ssh_command {
            command.arg("-e").arg(ssh.join(" "));
        }
        command.args(args);
        run(command, "rsync")?.map_err(UploadError::Rsync)
    }
}

/// What the school's server runs on a delivered session. The session's files and MANIFEST
/// are the desk's, so they are checked before `sha256sum` reads anything: the folder holds
/// only regular files (no link, FIFO or device for `sha256sum` to follow), every MANIFEST
/// line is a hash and a plain file name of the session (no path: a MANIFEST naming
/// `/dev/zero` once left `sha256sum` at 100 % CPU on the server), no name is listed twice,
/// at most [`MAX_MANIFEST_ENTRIES`] lines (the card's own bound), and the whole check runs
/// under a 10-minute `timeout`.
fn server_check() -> String {
    format!(
        "timeout 600 sh -c '\
bad=$(find . -mindepth 1 -maxdepth 1 ! -type f ! -name .rsync-partial -print -quit); \
[ -z \"$bad\" ] || {{ echo \"$bad is not a regular file\" >&2; exit 3; }}; \
LC_ALL=C grep -Evq \"^[0-9a-f]{{64}}  [A-Za-z0-9_][A-Za-z0-9._-]*$\" MANIFEST \
&& {{ echo \"MANIFEST has a line that is not a SHA-256 and a plain file name\" >&2; exit 3; }}; \
[ \"$(wc -l <MANIFEST)\" -le {MAX_MANIFEST_ENTRIES} ] || {{ echo \"MANIFEST lists over {MAX_MANIFEST_ENTRIES} files\" >&2; exit 3; }}; \
[ -z \"$(cut -c67- MANIFEST | LC_ALL=C sort | uniq -d)\" ] || {{ echo \"MANIFEST lists a file twice\" >&2; exit 3; }}; \
exec sha256sum --check --strict --quiet MANIFEST'"
    )
}

/// Runs `command`: `Err` if it cannot start, `Ok(Err(last lines it printed))` if it fails.
fn run(mut command: Command, program: &'static str) -> Result<Result<(), String>, UploadError> {
    let output = command
        .output()
        .map_err(|source| UploadError::Spawn { program, source })?;
    Ok(if output.status.success() {
        Ok(())
    } else {
        Err(tail(&output.stdout, &output.stderr))
    })
}

/// ssh with everything pinned; the words must have no spaces (rsync splits `-e` on them).
fn ssh_command(
    target: &SshTarget,
    identity: &Path,
    known_hosts: &Path,
) -> Result<Vec<String>, UploadError> {
    let word = |path: &Path| {
        let text = path.display().to_string();
        if text.is_empty() || text.contains(|c: char| c.is_whitespace() || c == '\'' || c == '"') {
            Err(UploadError::UnsafePath(path.to_owned()))
        } else {
            Ok(text)
        }
    };
    Ok(vec![
        "ssh".into(),
        "-F".into(),
        "/dev/null".into(),
        "-p".into(),
        target.port.to_string(),
        "-i".into(),
        word(identity)?,
        "-o".into(),
        "IdentitiesOnly=yes".into(),
        "-o".into(),
        "BatchMode=yes".into(),
        "-o".into(),
        "StrictHostKeyChecking=yes".into(),
        "-o".into(),
        format!("UserKnownHostsFile={}", word(known_hosts)?),
        "-o".into(),
        "GlobalKnownHostsFile=/dev/null".into(),
        "-o".into(),
        "UpdateHostKeys=no".into(),
        "-o".into(),
        "ConnectTimeout=20".into(),
        "-o".into(),
        "ServerAliveInterval=15".into(),
    ])
}

fn write_known_hosts(
    key: &HostKey,
    target: &SshTarget,
) -> Result<tempfile::NamedTempFile, UploadError> {
    use std::io::Write as _;
    let mut file = tempfile::Builder::new()
        .prefix("ekspresi-known-hosts-")
        .tempfile()
        .map_err(UploadError::KnownHosts)?;
    file.write_all(key.known_hosts_line(&target.host, target.port).as_bytes())
        .map_err(UploadError::KnownHosts)?;
    file.flush().map_err(UploadError::KnownHosts)?;
    Ok(file)
}

/// The last lines a tool printed, for the error message.
fn tail(stdout: &[u8], stderr: &[u8]) -> String {
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(stdout),
        String::from_utf8_lossy(stderr)
    );
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    lines[lines.len().saturating_sub(4)..].join(" | ")
}

/// A card's path as an rsync operand: absolute, so that neither a leading `-` nor a `:`
/// in a relative data directory can make rsync read it as an option or a host.
fn local_operand(path: &Path) -> Result<String, UploadError> {
    std::path::absolute(path)
        .map(|absolute| absolute.display().to_string())
        .map_err(|source| UploadError::Io {
            path: path.to_owned(),
            source,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The server's check, run here by the real `sh`, `find`, `grep` and `sha256sum` in a
    /// session folder as a desk could leave it on the server.
    fn server_check_in(dir: &Path) -> (bool, String) {
        let output = Command::new("sh")
            .arg("-c")
            .arg(server_check())
            .current_dir(dir)
            .output()
            .unwrap();
        (
            output.status.success(),
            String::from_utf8_lossy(&output.stderr).into_owned(),
        )
    }

    #[test]
    fn the_server_check_refuses_links_special_files_and_repeated_names() {
        let dir =
            std::env::temp_dir().join(format!("ekspresi-server-check-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("summary.json"), b"{}").unwrap();
        let manifest = crate::record::session::manifest(&dir).unwrap();
        std::fs::write(dir.join("MANIFEST"), &manifest).unwrap();
        assert_eq!(server_check_in(&dir), (true, String::new()));

        std::fs::write(dir.join("MANIFEST"), manifest.repeat(2)).unwrap();
        let (ok, said) = server_check_in(&dir);
        assert!(
            !ok && said.contains("MANIFEST lists a file twice"),
            "{said}"
        );
        std::fs::write(dir.join("MANIFEST"), &manifest).unwrap();

        std::os::unix::fs::symlink("/etc/passwd", dir.join("video.mp4")).unwrap();
        let (ok, said) = server_check_in(&dir);
        assert!(
            !ok && said.contains("./video.mp4 is not a regular file"),
            "{said}"
        );
        std::fs::remove_file(dir.join("video.mp4")).unwrap();

        assert!(Command::new("mkfifo")
            .arg(dir.join("video.mp4"))
            .status()
            .unwrap()
            .success());
        let (ok, said) = server_check_in(&dir);
        assert!(!ok && said.contains("is not a regular file"), "{said}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
