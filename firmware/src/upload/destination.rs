//! Where lessons go: a directory (a USB stick, a mounted share) or an SSH server, and the
//! server's pinned host key. Both are parsed once, with errors that say what is wrong.

use std::path::{Path, PathBuf};

use super::UploadError;

/// An upload destination, as `--to` or the config's `upload.to` spell it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Destination {
    /// A directory that must already exist (a stick that is not mounted must not turn
    /// into a folder on the card).
    Dir(PathBuf),
    /// `ssh://user@host[:port]/absolute/path`.
    Ssh(SshTarget),
}

/// An SSH destination.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SshTarget {
    pub user: String,
    pub host: String,
    pub port: u16,
    /// Absolute path on the server; only characters that need no shell quoting.
    pub path: String,
}

impl Destination {
    pub fn parse(text: &str) -> Result<Self, UploadError> {
        let bad = |reason: &str| UploadError::Destination {
            destination: text.to_owned(),
            reason: reason.to_owned(),
        };
        if !text.contains("://") {
            if text.is_empty() {
                return Err(bad("empty"));
            }
            // Made absolute: rsync takes `host:dir` (a ':' before the first '/') for a remote
            // host — past the pinned host key — and `-x` for an option; a path that starts
            // with '/' is neither (issue 29).
            let dir = std::path::absolute(text).map_err(|e| bad(&e.to_string()))?;
            return Ok(Destination::Dir(dir));
        }
        // Checked on the text: the URL parser would quietly resolve `a/../etc` to `/etc`.
        if text.split('/').any(|part| part == ".." || part == ".") {
            return Err(bad("the path must not contain '.' or '..'"));
        }
        let url = url::Url::parse(text).map_err(|e| bad(&e.to_string()))?;
        if url.scheme() != "ssh" {
            return Err(bad("only ssh:// URLs and directories are supported"));
        }
        if url.username().is_empty() || url.password().is_some() {
            return Err(bad(
                "name the account (ssh://user@host/path); keys only, no password",
            ));
        }
        // Neither may read as an option to ssh or rsync.
        let plain_name = |name: &str| {
            name.starts_with(|c: char| c.is_ascii_alphanumeric())
                && name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
        };
        if !plain_name(url.username()) {
            return Err(bad(
                "the user name must start with a letter or digit (letters, digits, '.', '_', '-')",
            ));
        }
        let host = url.host_str().ok_or_else(|| bad("no host"))?.to_owned();
        if !plain_name(host.trim_start_matches('[')) {
            return Err(bad("the host must start with a letter or digit"));
        }
        let path = url.path().to_owned();
        let plain_path = path.len() > 1
            && path
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"/._-".contains(&b));
        if !plain_path {
            return Err(bad(
                "the path must be absolute, of letters, digits, '/', '.', '_' and '-', without '..'",
            ));
        }
        Ok(Destination::Ssh(SshTarget {
            user: url.username().to_owned(),
            host,
            port: url.port().unwrap_or(22),
            path,
        }))
    }

    /// The folder a session of `desk` named `session` goes to, in rsync's syntax.
    pub fn session_target(&self, desk: &str, session: &str) -> String {
        match self {
            Destination::Dir(root) => root.join(desk).join(session).display().to_string(),
            Destination::Ssh(ssh) => format!(
                "{}@{}:{}",
                ssh.user,
                ssh.host,
                ssh_session_path(ssh, desk, session)
            ),
        }
    }

    /// A directory destination must exist; an SSH one is checked when connecting.
    pub fn check_reachable(&self) -> Result<(), UploadError> {
        match self {
            Destination::Dir(root) if !Path::new(root).is_dir() => Err(UploadError::Destination {
                destination: root.display().to_string(),
                reason: "is not a directory (is the stick or share mounted?)".into(),
            }),
            _ => Ok(()),
        }
    }
}

impl std::fmt::Display for Destination {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Destination::Dir(root) => write!(f, "{}", root.display()),
            Destination::Ssh(s) => write!(f, "ssh://{}@{}:{}{}", s.user, s.host, s.port, s.path),
        }
    }
}

/// `path/desk/session` on the server (desk and session names are safe path components).
pub fn ssh_session_path(ssh: &SshTarget, desk: &str, session: &str) -> String {
    format!("{}/{desk}/{session}", ssh.path.trim_end_matches('/'))
}

/// The server's public host key, `<type> <base64>` as in `ssh_host_ed25519_key.pub`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostKey {
    pub key_type: String,
    pub base64: String,
}

impl HostKey {
    pub fn parse(text: &str) -> Result<Self, UploadError> {
        let bad = || UploadError::HostKey(text.chars().take(40).collect());
        let mut parts = text.split_whitespace();
        let key_type = parts.next().ok_or_else(bad)?;
        let base64 = parts.next().ok_or_else(bad)?;
        let known_type = key_type.starts_with("ssh-") || key_type.starts_with("ecdsa-sha2-");
        let base64_like = base64.len() >= 40
            && base64
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"+/=".contains(&b));
        if !known_type || !base64_like {
            return Err(bad());
        }
        Ok(Self {
            key_type: key_type.to_owned(),
            base64: base64.to_owned(),
        })
    }

    /// The `known_hosts` line that pins this key to `host:port`.
    pub fn known_hosts_line(&self, host: &str, port: u16) -> String {
        let name = if port == 22 {
            host.to_owned()
        } else {
            format!("[{host}]:{port}")
        };
        format!("{name} {} {}\n", self.key_type, self.base64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn destinations_parse_or_say_why_not() {
        assert_eq!(
            Destination::parse("/media/stick").unwrap(),
            Destination::Dir("/media/stick".into())
        );
        let Destination::Ssh(ssh) =
            Destination::parse("ssh://desk@10.0.0.5:2222/srv/lessons/").unwrap()
        else {
            panic!("an ssh URL is an ssh destination");
        };
        assert_eq!(
            (ssh.user.as_str(), ssh.host.as_str(), ssh.port),
            ("desk", "10.0.0.5", 2222)
        );
        assert_eq!(
            ssh_session_path(&ssh, "desk-1", "s1"),
            "/srv/lessons/desk-1/s1"
        );
        for bad in [
            "",
            "http://host/x",
            "ssh://host/x",
            "ssh://u:pw@host/x",
            "ssh://u@host/",
            "ssh://u@host/a b",
            "ssh://u@host/a/../etc",
            "ssh://u@host/x;rm",
            "ssh://-oProxyCommand=x@host/x",
            "ssh://u@-host/x",
        ] {
            assert!(Destination::parse(bad).is_err(), "{bad:?} is refused");
        }
        // A relative directory, even one that looks like `host:path` or an option, is a
        // directory here, made absolute.
        for relative in ["evil:lessons", "-e sh x", "stick/lessons"] {
            let Destination::Dir(dir) = Destination::parse(relative).unwrap() else {
                panic!("{relative:?} is a directory");
            };
            assert!(
                dir.is_absolute() && dir.ends_with(relative),
                "{}",
                dir.display()
            );
        }
    }

    #[test]
    fn host_keys_are_pinned_per_port() {
        let key = HostKey::parse(
            "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBv5sX0mR1n5Jk0aQ3mW3n6c8yH2u1v9zWmB3z2Yx0aQ root@server",
        )
        .unwrap();
        assert!(key
            .known_hosts_line("h", 22)
            .starts_with("h ssh-ed25519 AAAA"));
        assert!(key
            .known_hosts_line("h", 2222)
            .starts_with("[h]:2222 ssh-ed25519 "));
        assert!(HostKey::parse("ssh-ed25519").is_err());
        assert!(HostKey::parse("rsa AAAA").is_err());
    }
}

#[cfg(test)]
mod properties {
    use super::*;
    use proptest::prelude::*;

    fn destination_text() -> impl Strategy<Value = String> {
        let piece = prop_oneof![
            Just("ssh://".to_owned()),
            Just("-".to_owned()),
            Just(":".to_owned()),
            Just("@".to_owned()),
            Just("/".to_owned()),
            Just("..".to_owned()),
            Just(" ".to_owned()),
            Just("'".to_owned()),
            Just("$(x)".to_owned()),
            Just("[::1]".to_owned()),
            "[a-z0-9]{1,6}",
            any::<char>().prop_map(String::from),
        ];
        proptest::collection::vec(piece, 1..10).prop_map(|pieces| pieces.concat())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2048))]

        /// Whatever a config or the command line says, a destination that parses reaches
        /// rsync and ssh only as a path or as words that cannot be options, hosts or shell.
        #[test]
        fn parsed_destinations_cannot_steer_rsync_or_ssh(text in destination_text()) {
            match Destination::parse(&text) {
                Ok(Destination::Dir(dir)) => {
                    prop_assert!(dir.is_absolute());
                    let target = Destination::Dir(dir).session_target("desk-1", "s");
                    prop_assert!(target.starts_with('/'));
                }
                Ok(Destination::Ssh(ssh)) => {
                    for word in [&ssh.user, &ssh.host] {
                        prop_assert!(!word.starts_with('-'));
                        prop_assert!(!word.contains(|c: char| c.is_whitespace() || "'\"$`;&|".contains(c)));
                    }
                    prop_assert!(ssh.path.starts_with('/'));
                    prop_assert!(ssh.path.bytes().all(|b| b.is_ascii_alphanumeric() || b"/._-".contains(&b)));
                    prop_assert!(!ssh.path.split('/').any(|part| part == ".."));
                }
                Err(_) => {}
            }
        }
    }
}
