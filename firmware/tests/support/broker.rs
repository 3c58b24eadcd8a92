//! A real Mosquitto for the live view's test and bench, set up by the shipped kit
//! (`board/deploy/broker/setup-broker.sh`), and the child processes around it.
#![allow(dead_code)] // the test and the bench each use part of it

use std::io::Write as _;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Child processes killed when dropped, however the test ends.
pub struct Children(pub Vec<Child>);

impl Drop for Children {
    fn drop(&mut self) {
        for child in &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A TCP port free on 127.0.0.1 now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Waits (20 s at most) until something listens on `port`.
pub fn wait_for_port(port: u16) {
    let start = Instant::now();
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "port {port} never opened"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The shipped broker kit's folder.
pub fn kit() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../board/deploy/broker")
}

/// The broker's folder `dir` for `localhost:port`, made by the shipped setup script (CA,
/// server certificate, the live user, ACL, config). The tests run as root, and Mosquitto
/// would drop to its own user, which cannot enter a private test folder: it stays root.
pub fn set_up_broker(dir: &Path, port: u16) {
    let status = Command::new("bash")
        .arg(kit().join("setup-broker.sh"))
        .arg(dir)
        .args(["localhost", &port.to_string()])
        .stdout(Stdio::null())
        .status()
        .expect("bash runs");
    assert!(status.success(), "setup-broker.sh failed");
    let mut config = std::fs::OpenOptions::new()
        .append(true)
        .open(dir.join("mosquitto.conf"))
        .unwrap();
    writeln!(config, "user root").unwrap();
}

/// Mosquitto on the broker folder's config, once it listens.
pub fn start_mosquitto(dir: &Path, port: u16) -> Child {
    let child = Command::new("mosquitto")
        .arg("-c")
        .arg(dir.join("mosquitto.conf"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("mosquitto is installed (scripts/test.sh installs Debian's mosquitto)");
    wait_for_port(port);
    child
}
