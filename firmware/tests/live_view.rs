//! The live class view with real parts (issue 31): a real Mosquitto on 127.0.0.1 set up by
//! the shipped scripts (`board/deploy/broker/`: TLS with the school's own CA, a password per
//! desk, the ACL), desks running `ekspresi publish` on per-second logs written as a lesson
//! writes them, and `ekspresi live` serving its page; the test reads the page's event stream
//! as a browser would.

mod support;

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use ekspresi_common::estimate::{Correction, Estimate};
use ekspresi_common::Expression;
use firmware::aggregate::{EvidenceFloor, Tally};
use firmware::live::class::round_to_five;
use firmware::models::Installed;
use firmware::record::seconds::{replay, SecondRow};
use firmware::record::summary::{LessonTimes, Summary, SummaryInput};
use support::broker::{free_port, kit, set_up_broker, start_mosquitto, wait_for_port, Children};
use support::{kiosk_command, manifest_dir, scratch};

/// The broker's folder, set up by the shipped scripts with `desks` added, and Mosquitto on it.
fn broker(dir: &Path, port: u16, desks: &[&str]) -> Child {
    set_up_broker(dir, port);
    for desk in desks {
        add_desk(dir, desk);
    }
    start_mosquitto(dir, port)
}

/// `add-desk.sh`: the desk's password in `dir/desks/DESK.password`.
fn add_desk(dir: &Path, desk: &str) {
    let status = Command::new("bash")
        .arg(kit().join("add-desk.sh"))
        .arg(dir)
        .arg(desk)
        .stdout(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success(), "add-desk.sh {desk} failed");
}

/// The shipped default model's calibration.
fn calibration() -> ekspresi_common::estimate::Calibration {
    let installed = Installed::find().unwrap();
    let default = installed.named(&installed.manifest.default).unwrap();
    default.calibration.clone().unwrap()
}

/// `seconds` rows of a lesson, `per_second` faces each: happy, neutral, sad in that mix.
fn rows(seconds: u64, mix: [u64; 3]) -> Vec<SecondRow> {
    (0..seconds)
        .map(|second| {
            let mut faces = [0u64; 7];
            faces[Expression::Happy.label()] = mix[0];
            faces[Expression::Neutral.label()] = mix[1];
            faces[Expression::Sad.label()] = mix[2];
            SecondRow {
                second,
                faces,
                no_face: 0,
                probabilities: None,
            }
        })
        .collect()
}

/// A desk's card with a running lesson (summary written at its start, `seconds.csv` header
/// only) and its config; returns the config path and the session folder.
fn desk(dir: &Path, desk: &str, broker: &str, password_file: &Path) -> (PathBuf, PathBuf) {
    let session = lesson(dir, desk);
    (config_for(dir, desk, broker, password_file), session)
}

/// A desk's card with a running lesson just opened.
fn lesson(dir: &Path, desk: &str) -> PathBuf {
    let data = dir.join(desk);
    let session = data
        .join("sessions")
        .join(desk)
        .join("2026-12-04T09-00-00Z");
    std::fs::create_dir_all(&session).unwrap();
    let calibration = calibration();
    let summary = Summary::build(&SummaryInput {
        desk_id: desk,
        lesson_id: None,
        lesson_start: "2026-12-04T09:00:00Z",
        lesson_end: None,
        tally: &Tally::default(),
        floor: EvidenceFloor::default(),
        frames_dropped: 0,
        frames_skipped: 0,
        model: "lenet5-int8.onnx",
        model_accuracy: None,
        calibration: Some(&calibration),
        video_note: None,
        times: LessonTimes::Camera,
    });
    std::fs::write(
        session.join("summary.json"),
        serde_json::to_vec(&summary).unwrap(),
    )
    .unwrap();
    std::fs::write(
        session.join("seconds.csv"),
        "second,angry,disgust,fear,happy,sad,surprise,neutral,no_face\n",
    )
    .unwrap();
    session
}

/// The desk's config: its card and the broker, with the password in `password_file`.
fn config_for(dir: &Path, desk: &str, broker: &str, password_file: &Path) -> PathBuf {
    let data = dir.join(desk);
    let config = serde_json::json!({
        "desk_id": desk,
        "data_dir": data,
        "publish": {
            "broker": broker,
            "ca": dir.join("broker/ca.pem"),
            "password_file": password_file,
        }
    });
    let path = dir.join(format!("{desk}.json"));
    std::fs::write(&path, config.to_string()).unwrap();
    path
}

/// Appends `rows` to the session's log, as the kiosk does second by second.
fn write_rows(session: &Path, rows: &[SecondRow]) {
    let mut file = std::fs::OpenOptions::new()
        .append(true)
        .open(session.join("seconds.csv"))
        .unwrap();
    for row in rows {
        let faces: Vec<String> = row.faces.iter().map(u64::to_string).collect();
        writeln!(file, "{},{},{}", row.second, faces.join(","), row.no_face).unwrap();
    }
}

/// Headless Chromium on the live page (a fresh profile, no network beyond loopback); what it
/// prints. The page shows the state it was served with at once (an open event stream would
/// hold a virtual-time budget forever).
fn chromium(dir: &Path, args: &[&str]) -> String {
    let output = Command::new("chromium")
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--hide-scrollbars",
            "--window-size=1000,760",
        ])
        .arg(format!(
            "--user-data-dir={}",
            dir.join("chromium-profile").display()
        ))
        .args(args)
        .output()
        .expect("chromium is installed (scripts/test.sh installs Debian's chromium)");
    assert!(
        output.status.success(),
        "chromium failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn publisher(config: &Path) -> Child {
    kiosk_command()
        .args(["publish", "--config"])
        .arg(config)
        .env("RUST_LOG", "firmware=info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// The live page's event stream, read as a browser reads it.
struct Events {
    lines: BufReader<TcpStream>,
    seen: Vec<String>,
    /// The page's state now: the last event (events come only when it changes).
    last: Option<serde_json::Value>,
}

impl Events {
    fn open(port: u16) -> Events {
        let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
        write!(stream, "GET /events HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n").unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(1)))
            .unwrap();
        Events {
            lines: BufReader::new(stream),
            seen: Vec::new(),
            last: None,
        }
    }

    /// The next event within `limit`, if one comes.
    fn next(&mut self, limit: Duration) -> Option<serde_json::Value> {
        let start = Instant::now();
        while start.elapsed() < limit {
            let mut line = String::new();
            match self.lines.read_line(&mut line) {
                Ok(0) => panic!("the event stream ended"),
                Ok(_) => {}
                Err(_) => continue, // the read timeout: look at the clock again
            }
            let Some(data) = line.trim_end().strip_prefix("data: ") else {
                continue;
            };
            self.seen.push(data.to_owned());
            let event: serde_json::Value = serde_json::from_str(data).unwrap();
            self.last = Some(event.clone());
            return Some(event);
        }
        None
    }

    /// The page's state once `wanted` accepts it (now, or by an event within `limit`).
    fn until(
        &mut self,
        limit: Duration,
        wanted: impl Fn(&serde_json::Value) -> bool,
    ) -> serde_json::Value {
        let start = Instant::now();
        loop {
            if let Some(now) = self.last.as_ref().filter(|e| wanted(e)) {
                return now.clone();
            }
            let left = limit.saturating_sub(start.elapsed());
            assert!(
                !left.is_zero() && self.next(left).is_some()
                    || self.last.as_ref().is_some_and(&wanted),
                "no such state within {limit:?}; the page shows {:?}",
                self.last
            );
        }
    }

    /// The page's state is accepted by `wanted` now and stays so for `period`.
    fn holds(&mut self, period: Duration, wanted: impl Fn(&serde_json::Value) -> bool) {
        assert!(self.last.as_ref().is_some_and(&wanted), "{:?}", self.last);
        let start = Instant::now();
        while let Some(event) = self.next(period.saturating_sub(start.elapsed())) {
            assert!(wanted(&event), "the page changed to {event}");
        }
    }
}

fn waiting_with(contributing: u64) -> impl Fn(&serde_json::Value) -> bool {
    move |e| e["state"] == "waiting" && e["contributing"] == contributing
}

#[test]
fn desks_publish_through_a_real_broker_and_the_live_view_keeps_its_floor() {
    let dir = scratch("live_view");
    let port = free_port();
    let address = format!("localhost:{port}");
    let names = ["d01", "d02", "d03", "d04", "d05"];
    let broker_dir = dir.join("broker");
    let mut children = Children(vec![broker(&broker_dir, port, &names)]);

    let live_port = free_port();
    children.0.push(
        kiosk_command()
            .args(["live", "--broker", &address, "--ca"])
            .arg(broker_dir.join("ca.pem"))
            .arg("--password-file")
            .arg(broker_dir.join("live-password"))
            .args([
                "--listen",
                &format!("127.0.0.1:{live_port}"),
                "--min-desks",
                "5",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    wait_for_port(live_port);
    let mut events = Events::open(live_port);

    // Four desks, 75 % positive each: fewer than the floor, so the page waits.
    let positive = rows(25, [3, 0, 1]);
    let negative = rows(25, [1, 0, 3]);
    for name in &names[..4] {
        let password = broker_dir.join("desks").join(format!("{name}.password"));
        let (config, session) = desk(&dir, name, &address, &password);
        children.0.push(publisher(&config));
        write_rows(&session, &positive);
    }
    events.until(Duration::from_secs(30), waiting_with(4));

    // d01 writing under d05's id is dropped by the broker's ACL: still four.
    let d01_password = std::fs::read_to_string(broker_dir.join("desks/d01.password")).unwrap();
    let window = serde_json::json!({
        "schema": 1, "session": "x", "sequence": 0, "window_start": 0, "seconds": 10,
        "per_second": (0..10).map(|s| serde_json::json!({"second": s, "positive": 0, "neutral": 0, "negative": 5, "no_face": 0})).collect::<Vec<_>>(),
        "model": "m", "calibration": null
    });
    let published = Command::new("mosquitto_pub")
        .args(["-h", "localhost", "-p", &port.to_string(), "--cafile"])
        .arg(broker_dir.join("ca.pem"))
        .args(["-u", "d01", "-P", d01_password.trim(), "-q", "1"])
        .args(["-t", "ekspresi/v1/d05/counts", "-m", &window.to_string()])
        .status()
        .unwrap();
    assert!(published.success(), "mosquitto_pub could not even connect");
    events.holds(Duration::from_secs(3), waiting_with(4));

    // A wrong password is refused by the broker, and the publisher says so.
    let wrong = dir.join("wrong-password");
    std::fs::write(&wrong, "not-the-password\n").unwrap();
    let (config, session) = desk(&dir, "d05", &address, &wrong);
    write_rows(&session, &negative);
    let mut refused = publisher(&config);
    let stderr = BufReader::new(refused.stderr.take().unwrap());
    let said = stderr
        .lines()
        .map_while(Result::ok)
        .find(|line| line.contains("refused this desk's user name or password"));
    let _ = refused.kill();
    let _ = refused.wait();
    assert!(
        said.is_some(),
        "the publisher never said its password was refused"
    );
    events.holds(Duration::from_secs(1), waiting_with(4));

    // d05 with its own password: the floor is met, the page shows the desks' shares.
    let password = broker_dir.join("desks/d05.password");
    children
        .0
        .push(publisher(&config_for(&dir, "d05", &address, &password)));
    let live = events.until(Duration::from_secs(30), |e| e["state"] == "live");
    let correction = Correction::new(&calibration()).unwrap();
    let desk_estimate = |rows: &[SecondRow]| -> Estimate {
        let (tally, _) = replay(&rows[..20]); // the two finished windows
        tally.estimate(Some(&correction)).unwrap()
    };
    let mut estimates = vec![desk_estimate(&positive); 4];
    estimates.push(desk_estimate(&negative));
    let expected = round_to_five(Estimate::mean(&estimates).unwrap().shares);
    assert_eq!(
        [&live["positive"], &live["neutral"], &live["negative"]],
        expected.map(serde_json::Value::from).each_ref(),
        "{live}"
    );
    assert_eq!(live["desks"], 5);

    // The page as a browser renders it: the shares the desks sent, no desk id.
    let page = format!("http://127.0.0.1:{live_port}/");
    let dom = chromium(&dir, &["--dump-dom", &page]);
    for (key, value) in ["positive", "neutral", "negative"].iter().zip(expected) {
        let shown = format!("<b id=\"{key}\">{value} %</b>");
        assert!(dom.contains(&shown), "{shown} not in the page: {dom}");
    }
    assert!(dom.contains("5 desks see a face"), "{dom}");
    assert!(dom.contains("prohibited in"), "the responsible-use note");
    for name in &names {
        assert!(!dom.contains(name), "{name} on the page");
    }
    let png = dir.join("live-view.png");
    chromium(&dir, &[&format!("--screenshot={}", png.display()), &page]);
    assert!(image::open(&png).is_ok(), "a screenshot of the live page");

    // The broker restarts (a school server's update): the desks and the live view reconnect
    // with back-off, and the next windows reach the page again.
    let _ = children.0[0].kill();
    let _ = children.0[0].wait();
    events.until(Duration::from_secs(10), |e| e["state"] == "live");
    children.0[0] = start_mosquitto(&broker_dir, port);
    // From second 25 on, the four desks turn negative: only new windows can show it. The
    // lesson goes on as a lesson does, a window's worth of rows at a time (windows sent
    // before the live view has subscribed again are gone: they are about then, not now).
    let reconnected = Instant::now();
    let before = live["negative"].as_u64().unwrap();
    let negative_later = rows(400, [1, 0, 3]);
    let mut written = 25;
    let turned = |e: &serde_json::Value| {
        e["state"] == "live" && e["desks"] == 5 && e["negative"].as_u64() > Some(before)
    };
    while !events.last.as_ref().is_some_and(turned) {
        assert!(
            reconnected.elapsed() < Duration::from_secs(60),
            "the desks' windows never reached the page again: {:?}",
            events.last
        );
        // All five desks go on (d05, the negative one, as before).
        for name in &names {
            let session = dir
                .join(name)
                .join("sessions")
                .join(name)
                .join("2026-12-04T09-00-00Z");
            write_rows(&session, &negative_later[written..written + 10]);
        }
        written += 10;
        let _ = events.next(Duration::from_secs(1));
    }
    eprintln!(
        "live again {:?} after the broker restarted",
        reconnected.elapsed()
    );

    // A publisher killed with SIGKILL: the broker publishes its last will, the desk stops
    // counting and the page waits again (keep-alive 15 s: within about 23 s).
    let killed = children.0.len() - 2; // d04's publisher (d05's is last)
    let _ = children.0[killed].kill();
    events.until(Duration::from_secs(40), waiting_with(4));

    // Nothing that reached the browser names a desk.
    for event in &events.seen {
        for name in &names {
            assert!(!event.contains(name), "{event}");
        }
    }
}

/// The demo lesson in real time into `data` with `config`, while `during` runs; its one
/// session folder.
fn demo_lesson(data: &Path, config: &Path, during: impl FnOnce()) -> PathBuf {
    let mut replay = kiosk_command()
        .args(["replay", "--realtime", "--out"])
        .arg(data)
        .arg("--config")
        .arg(config)
        .arg(manifest_dir().join("assets/demo"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    during();
    assert!(replay.wait().unwrap().success(), "the lesson failed");
    let desk = data.join("sessions/desk-1");
    let mut sessions: Vec<PathBuf> = std::fs::read_dir(desk)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(sessions.len(), 1);
    sessions.pop().unwrap()
}

/// What a session holds, less the wall-clock times a replay stamps: its file names, its
/// per-second log, its timeline and its summary without `lesson_start` / `lesson_end`.
fn session_content(dir: &Path) -> (Vec<String>, String, String, serde_json::Value) {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    let read = |name: &str| std::fs::read_to_string(dir.join(name)).unwrap();
    let mut summary: serde_json::Value = serde_json::from_str(&read("summary.json")).unwrap();
    let object = summary.as_object_mut().unwrap();
    object.remove("lesson_start");
    object.remove("lesson_end");
    (names, read("seconds.csv"), read("timeline.csv"), summary)
}

/// A lesson on a desk whose broker is down, comes up, and goes down again leaves exactly
/// the files of a lesson on a desk that does not publish: the publisher only reads them.
#[test]
fn a_lesson_is_the_same_with_the_broker_down_up_and_down_again() {
    let dir = scratch("live_view_broker_flaps");
    let port = free_port();
    let broker_dir = dir.join("broker");
    // The broker's folder is made now; Mosquitto itself starts mid-lesson.
    set_up_broker(&broker_dir, port);
    add_desk(&broker_dir, "desk-1");

    let plain = dir.join("plain.json");
    std::fs::write(&plain, r#"{"desk_id": "desk-1"}"#).unwrap();
    let alone = demo_lesson(&dir.join("alone"), &plain, || {});

    let publishing_data = dir.join("publishing");
    let publishing = serde_json::json!({
        "desk_id": "desk-1",
        "data_dir": publishing_data,
        "publish": {
            "broker": format!("localhost:{port}"),
            "ca": broker_dir.join("ca.pem"),
            "password_file": broker_dir.join("desks/desk-1.password"),
        }
    });
    let config = dir.join("publishing.json");
    std::fs::write(&config, publishing.to_string()).unwrap();
    let mut children = Children(Vec::new());
    let published = demo_lesson(&publishing_data, &config, || {
        children.0.push(publisher(&config)); // broker down
        std::thread::sleep(Duration::from_secs(2));
        children.0.push(start_mosquitto(&broker_dir, port)); // up
        std::thread::sleep(Duration::from_secs(3));
        let broker = children.0.pop().unwrap(); // down again
        drop(Children(vec![broker]));
    });
    drop(children);
    let (a, b) = (session_content(&alone), session_content(&published));
    assert_eq!(a.0, b.0, "the same files");
    assert_eq!(a.1, b.1, "the same seconds.csv");
    assert_eq!(a.2, b.2, "the same timeline.csv");
    assert_eq!(a.3, b.3, "the same summary");
    firmware::record::session::verify_manifest(&published).unwrap();
}
