//! The live class view under a class's load, through the real broker: `DESKS` simulated
//! desks (30, 100, 300 by default, side by side in one run) each publish a window every 10 s
//! to a Mosquitto set up by the shipped kit, and `ekspresi live` serves the page. Latency is
//! measured end to end, publish to server-sent event: with the privacy floor set to all the
//! desks, one desk turns its face on and off (a window with a face, then one without), so
//! each of its windows flips the page between "live" and "waiting" — an event the bench
//! reads off `/events` as a browser would. The live server's CPU is read from /proc over the
//! same time.
//!
//! `cargo bench -p firmware --bench live_view [-- DESKS...]`

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use firmware::live::broker::{options, Connection};
use firmware::live::message::{counts_topic, status_topic, SecondCount, WindowCounts, SCHEMA};
use rumqttc::{Client, QoS};

#[path = "../tests/support/broker.rs"]
mod broker_kit;
use broker_kit::{free_port, set_up_broker, start_mosquitto, wait_for_port, Children};

/// Flips timed per row.
const FLIPS: usize = 60;

fn main() {
    let desks: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let desks = if desks.is_empty() {
        vec![30, 100, 300]
    } else {
        desks
    };
    println!("\n## Live class view: publish → server-sent event, through Mosquitto\n");
    println!("| desks | windows/s | flips timed | p50 ms | p99 ms | max ms | live server CPU (% of one core) |");
    println!("|---:|---:|---:|---:|---:|---:|---:|");
    for n in desks {
        let row = run(n);
        println!(
            "| {n} | {:.1} | {} | {:.1} | {:.1} | {:.1} | {:.1} |",
            n as f64 / 10.0,
            row.latencies_ms.len(),
            percentile(&row.latencies_ms, 0.50),
            percentile(&row.latencies_ms, 0.99),
            percentile(&row.latencies_ms, 1.0),
            row.cpu_percent
        );
    }
}

struct Row {
    latencies_ms: Vec<f64>,
    cpu_percent: f64,
}

fn run(desks: usize) -> Row {
    let dir = scratch(&format!("live-bench-{desks}"));
    let port = free_port();
    let broker_dir = dir.join("broker");
    let mut children = Children(vec![broker(&broker_dir, port, desks)]);
    let live_port = free_port();
    let live = Command::new(ekspresi())
        .args(["live", "--broker", &format!("localhost:{port}"), "--ca"])
        .arg(broker_dir.join("ca.pem"))
        .arg("--password-file")
        .arg(broker_dir.join("live-password"))
        .args(["--listen", &format!("127.0.0.1:{live_port}")])
        .args(["--min-desks", &desks.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("ekspresi live");
    let live_pid = live.id();
    children.0.push(live);
    wait_for_port(live_port);
    let mut events = Events::open(live_port);

    // Every desk but the last publishes a window with a face every 10 s, staggered.
    let clients: Vec<(String, Client)> = (0..desks)
        .map(|i| {
            let desk = format!("d{i:03}");
            let client = connect(&broker_dir, port, &desk);
            (desk, client)
        })
        .collect();
    let (steady, flipper) = clients.split_at(desks - 1);
    let steady: Vec<(String, Client)> = steady.to_vec();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let load = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut sequence = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                for (desk, client) in &steady {
                    let _ = client.try_publish(
                        counts_topic(desk),
                        QoS::AtLeastOnce,
                        false,
                        window(sequence, true),
                    );
                    std::thread::sleep(Duration::from_secs_f64(10.0 / steady.len() as f64));
                }
                sequence += 1;
            }
        })
    };
    // Let every steady desk be seen once.
    std::thread::sleep(Duration::from_secs(11));
    let (desk, client) = &flipper[0];
    let before = cpu_seconds(live_pid);
    let started = Instant::now();
    let mut latencies_ms = Vec::new();
    for flip in 0..FLIPS {
        let face = flip % 2 == 0;
        let sent = Instant::now();
        client
            .publish(
                counts_topic(desk),
                QoS::AtLeastOnce,
                false,
                window(flip as u64, face),
            )
            .unwrap();
        let wanted = if face { "live" } else { "waiting" };
        if events.until(Duration::from_secs(5), wanted) {
            latencies_ms.push(sent.elapsed().as_secs_f64() * 1e3);
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let cpu = cpu_seconds(live_pid) - before;
    let cpu_percent = 100.0 * cpu / started.elapsed().as_secs_f64();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let _ = load.join();
    Row {
        latencies_ms,
        cpu_percent,
    }
}

/// A 10-second window with (or without) a face every second.
fn window(sequence: u64, face: bool) -> Vec<u8> {
    let window = WindowCounts {
        schema: SCHEMA,
        session: "bench".into(),
        sequence,
        window_start: sequence * 10,
        seconds: 10,
        per_second: (0..10)
            .map(|s| SecondCount {
                second: sequence * 10 + s,
                positive: u64::from(face) * 2,
                neutral: u64::from(face),
                negative: u64::from(face),
                no_face: u64::from(!face) * 5,
            })
            .collect(),
        model: "lenet5-int8.onnx".into(),
        calibration: None,
    };
    serde_json::to_vec(&window).unwrap()
}

fn connect(broker_dir: &Path, port: u16, desk: &str) -> Client {
    let password = std::fs::read_to_string(broker_dir.join("desks").join(desk)).unwrap();
    let address = format!("localhost:{port}");
    let ca = broker_dir.join("ca.pem");
    let connection = Connection {
        address: &address,
        ca: &ca,
        user: desk,
        password: password.trim(),
        last_will: Some((status_topic(desk), "offline")),
    };
    let (client, mut events) = Client::new(options(&connection).unwrap(), 16);
    std::thread::spawn(move || for _ in events.iter() {});
    client
        .publish(status_topic(desk), QoS::AtLeastOnce, true, "online")
        .unwrap();
    client
}

/// The broker with `desks` desks (d000…), set up by the shipped script; passwords are
/// written in plain and hashed in one pass (`mosquitto_passwd -U`), not one call a desk.
fn broker(dir: &Path, port: u16, desks: usize) -> Child {
    set_up_broker(dir, port);
    std::fs::create_dir_all(dir.join("desks")).unwrap();
    let mut plain = String::new();
    for i in 0..desks {
        let desk = format!("d{i:03}");
        let password = format!("bench-{desk}-password");
        std::fs::write(dir.join("desks").join(&desk), &password).unwrap();
        plain.push_str(&format!("{desk}:{password}\n"));
    }
    let plain_file = dir.join("desk-passwords");
    std::fs::write(&plain_file, plain).unwrap();
    assert!(Command::new("mosquitto_passwd")
        .arg("-U")
        .arg(&plain_file)
        .status()
        .unwrap()
        .success());
    let mut all = std::fs::read_to_string(dir.join("passwords")).unwrap();
    all.push_str(&std::fs::read_to_string(&plain_file).unwrap());
    std::fs::write(dir.join("passwords"), all).unwrap();
    start_mosquitto(dir, port)
}

struct Events {
    lines: BufReader<TcpStream>,
}

impl Events {
    fn open(port: u16) -> Events {
        let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
        write!(stream, "GET /events HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n").unwrap();
        stream
            .set_read_timeout(Some(Duration::from_millis(100)))
            .unwrap();
        Events {
            lines: BufReader::new(stream),
        }
    }

    /// Whether an event of `state` arrives within `limit`.
    fn until(&mut self, limit: Duration, state: &str) -> bool {
        let start = Instant::now();
        let wanted = format!("\"state\":\"{state}\"");
        while start.elapsed() < limit {
            let mut line = String::new();
            if self.lines.read_line(&mut line).is_ok()
                && line.starts_with("data: ")
                && line.contains(&wanted)
            {
                return true;
            }
        }
        false
    }
}

/// User + system CPU seconds of process `pid` so far.
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let after_name = &stat[stat.rfind(')').unwrap() + 2..];
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of stat(5); 12 and 13 after the name.
    let ticks: f64 = fields[11].parse::<f64>().unwrap() + fields[12].parse::<f64>().unwrap();
    ticks / 100.0
}

fn percentile(values: &[f64], p: f64) -> f64 {
    if values.is_empty() {
        return f64::NAN;
    }
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index]
}

fn ekspresi() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_ekspresi"))
}

fn scratch(name: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../target/bench-scratch")
        .join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}
