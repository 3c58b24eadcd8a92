//! `ekspresi live`, on the teacher's machine: subscribes to the desks' windows, keeps the
//! class in memory only ([`ClassState`]) and serves one self-contained page (no CDN, no
//! network: inline script and SVG) on the loopback interface, updated by server-sent events.
//! What reaches the browser is a [`Snapshot`] and its time — never a desk id, a per-desk
//! series or a list of who is online — and nothing is written to disk.

use std::io::Write;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use anyhow::{bail, Result};
use rumqttc::{Client, Event, Packet, QoS};

use super::broker::{options, Connection};
use super::class::{ClassState, LiveSettings, Snapshot};
use super::message::{Topic, PREFIX};

/// How the live view connects and what it shows.
pub struct LiveOptions {
    pub listen: SocketAddr,
    pub broker: String,
    pub ca: std::path::PathBuf,
    pub user: String,
    pub password: String,
    pub settings: LiveSettings,
}

/// Browsers connected to `/events`, each fed the snapshots as they change.
#[derive(Default)]
struct Listeners {
    senders: Vec<Sender<String>>,
    latest: String,
    /// The class's snapshots of the last 30 minutes with their times (Unix seconds): what a
    /// page opened mid-lesson draws first. Class aggregates only, in memory only.
    history: std::collections::VecDeque<(u64, String)>,
}

/// How much of the class's series a newly opened page gets.
const HISTORY_SECONDS: u64 = 30 * 60;

impl Listeners {
    /// Sends `event` to every browser if it differs from the last one; forgets closed ones.
    fn publish(&mut self, event: String) {
        if event == self.latest {
            return;
        }
        let now = unix_seconds();
        self.history.push_back((now, event.clone()));
        while self
            .history
            .front()
            .is_some_and(|(at, _)| now.saturating_sub(*at) > HISTORY_SECONDS)
        {
            self.history.pop_front();
        }
        self.senders.retain(|s| s.send(event.clone()).is_ok());
        self.latest = event;
    }

    /// The history as a JSON array of `[seconds, snapshot]`.
    fn history_json(&self) -> String {
        let items: Vec<String> = self
            .history
            .iter()
            .map(|(at, event)| format!("[{at},{event}]"))
            .collect();
        format!("[{}]", items.join(","))
    }
}

fn unix_seconds() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Serves the live view until `stop` is set.
pub fn run(live: LiveOptions, stop: &Arc<AtomicBool>) -> Result<()> {
    if !live.listen.ip().is_loopback() {
        bail!(
            "the live view listens on the loopback interface only (127.0.0.1 or ::1), not {}",
            live.listen.ip()
        );
    }
    let connection = Connection {
        address: &live.broker,
        ca: &live.ca,
        user: &live.user,
        password: &live.password,
        last_will: None,
    };
    let (client, events) = Client::new(options(&connection)?, 64);
    let class = Arc::new(Mutex::new(ClassState::new(live.settings)));
    let listeners = Arc::new(Mutex::new(Listeners {
        latest: snapshot_event(&class, Instant::now()),
        ..Listeners::default()
    }));
    spawn_subscriber(client, events, class.clone(), listeners.clone());
    spawn_ticker(class, listeners.clone(), stop.clone());
    let server = tiny_http::Server::http(live.listen)
        .map_err(|e| anyhow::anyhow!("cannot listen on {}: {e}", live.listen))?;
    eprintln!("live class view on http://{}/", live.listen);
    while !stop.load(Ordering::Relaxed) {
        let Ok(Some(request)) = server.recv_timeout(Duration::from_millis(200)) else {
            continue;
        };
        serve(request, &listeners);
    }
    Ok(())
}

/// Subscribes on every connection (a clean session: a restarted broker forgets
/// subscriptions) and feeds each message to the class state.
fn spawn_subscriber(
    client: Client,
    mut events: rumqttc::Connection,
    class: Arc<Mutex<ClassState>>,
    listeners: Arc<Mutex<Listeners>>,
) {
    std::thread::spawn(move || {
        let mut wait = Duration::from_secs(1);
        for event in events.iter() {
            match event {
                Ok(Event::Incoming(Packet::ConnAck(_))) => {
                    wait = Duration::from_secs(1);
                    for kind in ["status", "counts"] {
                        let topic = format!("{PREFIX}/+/{kind}");
                        if let Err(error) = client.try_subscribe(topic, QoS::AtLeastOnce) {
                            tracing::warn!(%error, "cannot subscribe");
                        }
                    }
                }
                Ok(Event::Incoming(Packet::Publish(message))) => {
                    let now = Instant::now();
                    let Ok(mut state) = class.lock() else { return };
                    match Topic::parse(&message.topic) {
                        Some(Topic::Status(desk)) => state.status(&desk, &message.payload),
                        Some(Topic::Counts(desk)) => {
                            if let Err(error) = state.counts(&desk, &message.payload, now) {
                                tracing::debug!(%error, "a window refused");
                            }
                        }
                        None => {}
                    }
                    let event = event_of(state.snapshot(now));
                    drop(state);
                    if let Ok(mut listeners) = listeners.lock() {
                        listeners.publish(event);
                    }
                }
                Ok(_) => {}
                Err(error) => {
                    tracing::warn!("broker: {error}; next attempt in {} s", wait.as_secs());
                    std::thread::sleep(wait);
                    wait = (wait * 2).min(Duration::from_secs(30));
                }
            }
        }
    });
}

/// Once a second, the snapshot again: desks go stale without a message.
fn spawn_ticker(
    class: Arc<Mutex<ClassState>>,
    listeners: Arc<Mutex<Listeners>>,
    stop: Arc<AtomicBool>,
) {
    std::thread::spawn(move || {
        while !stop.load(Ordering::Relaxed) {
            std::thread::sleep(Duration::from_secs(1));
            let event = snapshot_event(&class, Instant::now());
            if let Ok(mut listeners) = listeners.lock() {
                listeners.publish(event);
            }
        }
    });
}

fn snapshot_event(class: &Mutex<ClassState>, now: Instant) -> String {
    let snapshot = class
        .lock()
        .map(|state| state.snapshot(now))
        .unwrap_or(Snapshot::Waiting {
            contributing: 0,
            needed: 0,
        });
    event_of(snapshot)
}

/// The event a browser gets: the snapshot (nothing else) as JSON.
fn event_of(snapshot: Snapshot) -> String {
    serde_json::to_string(&snapshot).unwrap_or_default()
}

fn serve(request: tiny_http::Request, listeners: &Arc<Mutex<Listeners>>) {
    let header = |name: &str, value: &str| {
        tiny_http::Header::from_bytes(name.as_bytes(), value.as_bytes()).ok()
    };
    let policy = header(
        "Content-Security-Policy",
        "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self'",
    );
    match request.url() {
        "/" => {
            // The state now, written into the page so it shows at once (a snapshot's JSON:
            // numbers and two fixed words, nothing that can end a script).
            let (latest, history) = listeners
                .lock()
                .map(|l| (l.latest.clone(), l.history_json()))
                .unwrap_or_default();
            let snapshot = if latest.is_empty() {
                "null".to_owned()
            } else {
                latest
            };
            let page = PAGE
                .replace("/*HISTORY*/[]", &history)
                .replace("/*SNAPSHOT*/null", &snapshot);
            let mut response = tiny_http::Response::from_string(page);
            for h in [header("Content-Type", "text/html; charset=utf-8"), policy]
                .into_iter()
                .flatten()
            {
                response.add_header(h);
            }
            let _ = request.respond(response);
        }
        "/events" => {
            let (sender, receiver) = mpsc::channel();
            let Ok(mut all) = listeners.lock() else {
                return;
            };
            let _ = sender.send(all.latest.clone());
            all.senders.push(sender);
            drop(all);
            std::thread::spawn(move || stream_events(request.into_writer(), &receiver));
        }
        _ => {
            let _ = request.respond(tiny_http::Response::empty(404));
        }
    }
}

/// Writes the event stream to a browser: the headers, then each snapshot as a `data:` line
/// (flushed at once: a buffered event is a late one), a comment every 15 s to keep the
/// connection open; ends when the browser goes or the live view stops.
fn stream_events(mut out: Box<dyn Write + Send>, events: &Receiver<String>) {
    let head = "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-store\r\nConnection: close\r\n\r\n";
    if out
        .write_all(head.as_bytes())
        .and_then(|()| out.flush())
        .is_err()
    {
        return;
    }
    loop {
        let text = match events.recv_timeout(Duration::from_secs(15)) {
            Ok(event) => format!("id: {}\ndata: {event}\n\n", unix_seconds()),
            Err(RecvTimeoutError::Timeout) => ": still here\n\n".to_owned(),
            Err(RecvTimeoutError::Disconnected) => return,
        };
        if out
            .write_all(text.as_bytes())
            .and_then(|()| out.flush())
            .is_err()
        {
            return;
        }
    }
}

/// The page: the class's shares as numbers and a chart of the last 30 minutes, drawn by
/// an inline script from the events; the responsible-use note.
const PAGE: &str = include_str!("live.html");
