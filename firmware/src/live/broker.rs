//! The connection to the school's broker: MQTT over TLS with rustls on the `ring` provider
//! (no cmake or aws-lc for the Pi build), the broker's certificate checked against the
//! school's own CA, and a user name and password per desk (the live view has its own).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rumqttc::{LastWill, MqttOptions, QoS, TlsConfiguration, Transport};
use serde::{Deserialize, Serialize};

/// Largest CA file or password file read.
const MAX_SECRET_FILE_BYTES: u64 = 64 * 1024;

/// Where the broker is and how to prove who we are to it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BrokerConfig {
    /// `host:port` of the school's MQTT broker (TLS); `None`: nothing is published.
    pub broker: Option<String>,
    /// The school's CA certificate (PEM) the broker's certificate is checked against.
    pub ca: PathBuf,
    /// File holding this desk's broker password (its user name is the desk id).
    pub password_file: PathBuf,
}

impl Default for BrokerConfig {
    fn default() -> Self {
        Self {
            broker: None,
            ca: PathBuf::from("/etc/ekspresi/broker-ca.pem"),
            password_file: PathBuf::from("/etc/ekspresi/broker-password"),
        }
    }
}

/// Why the broker cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    #[error("broker address {0:?}: expected host:port")]
    Address(String),
    #[error("{path}: {reason}")]
    File { path: PathBuf, reason: String },
    #[error("TLS: {0}")]
    Tls(String),
    #[error("{0}")]
    Unreachable(String),
}

/// What a connection error means, in words.
pub fn describe(error: &rumqttc::ConnectionError) -> String {
    use rumqttc::{ConnectReturnCode, ConnectionError};
    match error {
        ConnectionError::ConnectionRefused(
            ConnectReturnCode::BadUserNamePassword | ConnectReturnCode::NotAuthorized,
        ) => "the broker refused this desk's user name or password".into(),
        other => other.to_string(),
    }
}

/// `host:port`, checked.
pub fn parse_address(address: &str) -> Result<(String, u16), BrokerError> {
    let bad = || BrokerError::Address(address.to_owned());
    let (host, port) = address.rsplit_once(':').ok_or_else(bad)?;
    let port: u16 = port.parse().map_err(|_| bad())?;
    let host_ok = !host.is_empty()
        && host.len() <= 253
        && host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-'));
    if port == 0 || !host_ok {
        return Err(bad());
    }
    Ok((host.to_owned(), port))
}

/// A small file's text (a password or a CA), bounded and trimmed of its line end.
pub fn read_secret(path: &Path) -> Result<String, BrokerError> {
    use std::io::Read as _;
    let bad = |reason: String| BrokerError::File {
        path: path.to_owned(),
        reason,
    };
    let mut text = String::new();
    std::fs::File::open(path)
        .map_err(|e| bad(e.to_string()))?
        .take(MAX_SECRET_FILE_BYTES + 1)
        .read_to_string(&mut text)
        .map_err(|e| bad(e.to_string()))?;
    if text.len() as u64 > MAX_SECRET_FILE_BYTES {
        return Err(bad("larger than 64 KiB".into()));
    }
    Ok(text.trim_end_matches(['\r', '\n']).to_owned())
}

/// Who connects, to where, and what the broker says when it goes silent.
pub struct Connection<'a> {
    pub address: &'a str,
    pub ca: &'a Path,
    pub user: &'a str,
    pub password: &'a str,
    pub last_will: Option<(String, &'static str)>,
}

/// The MQTT options for `connection`: TLS to the school's CA only, the user's password, a
/// 15 s keep-alive (a desk gone silent is marked offline within about 20 s), the last will
/// retained.
pub fn options(connection: &Connection<'_>) -> Result<MqttOptions, BrokerError> {
    let (host, port) = parse_address(connection.address)?;
    let mut options = MqttOptions::new(connection.user, host, port);
    options.set_credentials(connection.user, connection.password);
    options.set_keep_alive(Duration::from_secs(15));
    options.set_max_packet_size(64 * 1024, 64 * 1024);
    if let Some((topic, payload)) = &connection.last_will {
        options.set_last_will(LastWill::new(topic, *payload, QoS::AtLeastOnce, true));
    }
    options.set_transport(Transport::tls_with_config(TlsConfiguration::Rustls(
        Arc::new(tls_config(connection.ca)?),
    )));
    Ok(options)
}

fn tls_config(ca: &Path) -> Result<rustls::ClientConfig, BrokerError> {
    let pem = read_secret(ca)?;
    let mut roots = rustls::RootCertStore::empty();
    for certificate in rustls_pemfile::certs(&mut pem.as_bytes()) {
        let certificate = certificate.map_err(|e| BrokerError::File {
            path: ca.to_owned(),
            reason: e.to_string(),
        })?;
        roots
            .add(certificate)
            .map_err(|e| BrokerError::Tls(e.to_string()))?;
    }
    if roots.is_empty() {
        return Err(BrokerError::File {
            path: ca.to_owned(),
            reason: "no certificate in it".into(),
        });
    }
    rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .map_err(|e| BrokerError::Tls(e.to_string()))
        .map(|builder| builder.with_root_certificates(roots).with_no_client_auth())
}

/// `kiosk check`'s probe: connects to the configured broker as this desk (TLS, its
/// password) and says whether the broker accepted it, within 10 s.
pub fn probe(config: &crate::config::KioskConfig) -> Result<String, BrokerError> {
    let settings = &config.publish;
    let Some(address) = settings.broker.as_deref() else {
        return Ok("not configured (publish.broker): no live class view from this desk".into());
    };
    let password = read_secret(&settings.password_file)?;
    let connection = Connection {
        address,
        ca: &settings.ca,
        user: &config.desk_id,
        password: &password,
        last_will: None,
    };
    // Its own client id: the desk's publisher, connected as the desk id, is not taken over.
    let mut probe_options = options(&connection)?;
    probe_options.set_client_id(format!("{}-check", config.desk_id));
    let (client, mut events) = rumqttc::Client::new(probe_options, 4);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let outcome = loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        match events.recv_timeout(left) {
            Ok(Ok(rumqttc::Event::Incoming(rumqttc::Packet::ConnAck(_)))) => {
                break Ok(format!(
                    "{address} reachable, TLS and this desk's password accepted"
                ));
            }
            Ok(Ok(_)) => {}
            Ok(Err(error)) => {
                break Err(BrokerError::Unreachable(format!(
                    "{address}: {}",
                    describe(&error)
                )))
            }
            Err(_) => {
                break Err(BrokerError::Unreachable(format!(
                    "{address}: no answer within 10 s"
                )))
            }
        }
    };
    let _ = client.try_disconnect();
    outcome
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_are_host_and_port() {
        assert_eq!(
            parse_address("broker.school.lan:8883").unwrap(),
            ("broker.school.lan".into(), 8883)
        );
        for bad in [
            "broker",
            ":8883",
            "host:0",
            "host:99999",
            "-x y:1",
            "host:port",
        ] {
            assert!(parse_address(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_ca_file_without_a_certificate_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let ca = dir.path().join("ca.pem");
        std::fs::write(&ca, "not a certificate\n").unwrap();
        let error = tls_config(&ca).unwrap_err().to_string();
        assert!(error.contains("no certificate"), "{error}");
        let missing = tls_config(&dir.path().join("absent.pem"))
            .unwrap_err()
            .to_string();
        assert!(missing.contains("absent.pem"), "{missing}");
    }
}
