//! The teacher's side with real parts: three desks record the demo lesson at the same time,
//! `ekspresi upload` delivers them to a directory and, through the real `rsync` and `ssh`, to
//! a real `sshd` on 127.0.0.1 started here; the copies check with the real `sha256sum -c`;
//! `ekspresi report` reads them and headless Chromium renders the report.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

mod support;
use support::{age_keygen, scratch};

const DESKS: [&str; 3] = ["desk-01", "desk-02", "desk-03"];
const ENCRYPTING_DESK: &str = "desk-03";
const KIOSK: &str = env!("CARGO_BIN_EXE_ekspresi");

/// A desk's card: its config and data directory.
struct Card {
    desk: &'static str,
    config: PathBuf,
    data_dir: PathBuf,
}

/// Three cards, each with the demo lesson recorded at the same time (so they are one
/// lesson), made once for all tests of this file. Tests copy them before changing them.
fn recorded_cards() -> &'static [Card] {
    static CARDS: OnceLock<Vec<Card>> = OnceLock::new();
    CARDS.get_or_init(|| {
        let root = scratch("teacher-side-cards");
        let cards: Vec<Card> = DESKS
            .iter()
            .map(|&desk| {
                let data_dir = root.join(desk);
                let config = root.join(format!("{desk}.json"));
                let mut json = serde_json::json!({
                    "desk_id": desk, "lesson_id": "physics", "data_dir": data_dir,
                });
                // The last desk encrypts its video (its upload must stay encrypted).
                if desk == ENCRYPTING_DESK {
                    json["encrypt_to"] = serde_json::json!([age_keygen(&root).1]);
                }
                std::fs::write(&config, json.to_string()).unwrap();
                Card {
                    desk,
                    config,
                    data_dir,
                }
            })
            .collect();
        let demos: Vec<_> = cards
            .iter()
            .map(|card| {
                Command::new(KIOSK)
                    .arg("demo")
                    .arg("--config")
                    .arg(&card.config)
                    .arg("--out")
                    .arg(&card.data_dir)
                    .stdout(Stdio::null())
                    .spawn()
                    .unwrap()
            })
            .collect();
        for mut demo in demos {
            assert!(demo.wait().unwrap().success(), "demo lesson failed");
        }
        cards
    })
}

/// A private copy of the cards for one test (configs point at the copies).
fn copy_cards(name: &str) -> Vec<Card> {
    let root = scratch(name);
    recorded_cards()
        .iter()
        .map(|card| {
            let data_dir = root.join(card.desk);
            copy_tree(&card.data_dir, &data_dir);
            let config = root.join(format!("{}.json", card.desk));
            let mut json: serde_json::Value =
                serde_json::from_str(&std::fs::read_to_string(&card.config).unwrap()).unwrap();
            json["data_dir"] = serde_json::json!(data_dir);
            std::fs::write(&config, json.to_string()).unwrap();
            Card {
                desk: card.desk,
                config,
                data_dir,
            }
        })
        .collect()
}

fn copy_tree(from: &Path, to: &Path) {
    let status = Command::new("cp")
        .arg("-a")
        .arg(from)
        .arg(to)
        .status()
        .unwrap();
    assert!(status.success());
}

fn upload(card: &Card, to: &str) -> Output {
    Command::new(KIOSK)
        .arg("upload")
        .arg("--config")
        .arg(&card.config)
        .arg("--to")
        .arg(to)
        .output()
        .unwrap()
}

fn assert_ok(output: &Output, what: &str) -> String {
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "{what} failed: {stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

/// The card's one session folder.
fn card_session(card: &Card) -> PathBuf {
    card_session_named(card, |_| true)
}

/// The card's one session folder whose name passes `keep`.
fn card_session_named(card: &Card, keep: impl Fn(&str) -> bool) -> PathBuf {
    let desk_dir = card.data_dir.join("sessions").join(card.desk);
    let sessions: Vec<PathBuf> = std::fs::read_dir(&desk_dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| keep(&p.file_name().unwrap().to_string_lossy()))
        .collect();
    assert_eq!(sessions.len(), 1, "{}", desk_dir.display());
    sessions[0].clone()
}

/// `sha256sum -c MANIFEST` in a delivered session, and its COMPLETE marker.
fn assert_delivered(dest_session: &Path) {
    let check = Command::new("sha256sum")
        .args(["--check", "--strict", "MANIFEST"])
        .current_dir(dest_session)
        .output()
        .expect("sha256sum (coreutils) is installed");
    assert!(
        check.status.success(),
        "sha256sum -c at {}: {}",
        dest_session.display(),
        String::from_utf8_lossy(&check.stdout)
    );
    let listed = String::from_utf8_lossy(&check.stdout).lines().count();
    assert!(
        listed >= 5,
        "MANIFEST lists the video, summaries and timeline"
    );
    assert!(dest_session.join("COMPLETE").exists());
}

fn dest_session(dest: &Path, card: &Card) -> PathBuf {
    let name = card_session(card).file_name().unwrap().to_owned();
    dest.join(card.desk).join(name)
}

/// Modification times of every file under `dir`, to show a second run touched nothing.
fn mtimes(dir: &Path) -> Vec<(PathBuf, std::time::SystemTime)> {
    let mut all: Vec<_> = walk(dir)
        .into_iter()
        .map(|p| {
            let time = std::fs::metadata(&p).unwrap().modified().unwrap();
            (p, time)
        })
        .collect();
    all.sort();
    all
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files.extend(walk(&path));
        } else {
            files.push(path);
        }
    }
    files
}

#[test]
fn three_desks_upload_to_a_directory_once_and_verify_there() {
    let cards = copy_cards("teacher-side-dir");
    let dest = scratch("teacher-side-dir-dest");
    // A lesson still being recorded on the first card (no COMPLETE): never touched.
    let running = cards[0]
        .data_dir
        .join("sessions")
        .join(cards[0].desk)
        .join("2026-12-02T09-00-00Z");
    std::fs::create_dir_all(&running).unwrap();
    std::fs::write(running.join("summary.json"), b"{}").unwrap();
    for card in &cards {
        let session = card_session_named(card, |name| name != "2026-12-02T09-00-00Z");
        let out = assert_ok(&upload(card, dest.to_str().unwrap()), "upload");
        assert!(out.contains("1 uploaded"), "{out}");
        let delivered = dest.join(card.desk).join(session.file_name().unwrap());
        assert_delivered(&delivered);
        assert!(session.join("UPLOADED").exists());
        let has = |name: &str| delivered.join(name).exists();
        if card.desk == ENCRYPTING_DESK {
            assert!(
                has("video-000001.mp4.age") && !has("video.mp4"),
                "encrypted stays encrypted"
            );
        } else {
            assert!(has("video.mp4"));
        }
    }
    let first = assert_ok(&upload(&cards[0], dest.to_str().unwrap()), "upload");
    assert!(first.contains("1 unfinished left alone"), "{first}");
    assert!(!dest
        .join(cards[0].desk)
        .join("2026-12-02T09-00-00Z")
        .exists());
    assert!(!running.join("UPLOADED").exists());
    // A second run copies nothing and touches nothing.
    let before = mtimes(&dest);
    for card in &cards {
        let out = assert_ok(&upload(card, dest.to_str().unwrap()), "second upload");
        assert!(
            out.contains("0 uploaded") && out.contains("1 already uploaded"),
            "{out}"
        );
    }
    assert_eq!(
        mtimes(&dest),
        before,
        "a second upload changed the destination"
    );
    // A stick that is not mounted is an error, not a folder on the card.
    let missing = upload(&cards[0], dest.join("not-mounted").to_str().unwrap());
    assert!(!missing.status.success());
    assert!(String::from_utf8_lossy(&missing.stderr).contains("mounted"));
}

/// A card whose data directory is relative and reads like an rsync option and a host
/// (`-e:card`) is still copied as local files: rsync gets absolute operands after `--`
/// (issue 29).
#[test]
fn a_card_path_that_reads_like_an_option_or_a_host_is_copied_as_a_path() {
    let cards = copy_cards("teacher-side-odd-path");
    let card = &cards[0];
    let root = card.data_dir.parent().unwrap();
    let odd = root.join("-e:card");
    std::fs::rename(&card.data_dir, &odd).unwrap();
    let mut json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&card.config).unwrap()).unwrap();
    json["data_dir"] = serde_json::json!("-e:card");
    std::fs::write(&card.config, json.to_string()).unwrap();
    let dest = scratch("teacher-side-odd-path-dest");
    let output = Command::new(KIOSK)
        .args(["upload", "--config"])
        .arg(&card.config)
        .arg("--to")
        .arg(&dest)
        .current_dir(root)
        .output()
        .unwrap();
    let out = assert_ok(&output, "upload from -e:card");
    assert!(out.contains("1 uploaded"), "{out}");
    let session = std::fs::read_dir(odd.join("sessions").join(card.desk))
        .unwrap()
        .next()
        .unwrap()
        .unwrap();
    assert_delivered(&dest.join(card.desk).join(session.file_name()));
}

/// One damaged lesson on a card (its files no longer match its MANIFEST) does not stop the
/// desk's later lessons from being delivered: it is named, left unmarked, the others are
/// uploaded, and the run says so and fails (issue 29).
#[test]
fn a_damaged_lesson_is_named_and_the_later_ones_still_go() {
    let cards = copy_cards("teacher-side-damaged");
    let card = &cards[0];
    let dest = scratch("teacher-side-damaged-dest");
    let first = card_session(card);
    let name = first.file_name().unwrap().to_string_lossy().into_owned();
    let later = first.with_file_name(format!("{name}-later"));
    copy_tree(&first, &later);
    let _ = std::fs::remove_file(later.join("UPLOADED"));
    let mut summary = std::fs::read(first.join("summary.json")).unwrap();
    summary[10] ^= 0x20; // a letter's case: the file no longer matches its MANIFEST line
    std::fs::write(first.join("summary.json"), summary).unwrap();

    let output = upload(card, &dest.display().to_string());
    let said = String::from_utf8_lossy(&output.stdout);
    assert!(!output.status.success(), "{said}");
    assert!(
        said.contains(&format!("not uploaded {}/{name}:", card.desk)),
        "{said}"
    );
    assert!(
        said.contains(&format!("uploaded {}/{name}-later", card.desk)),
        "{said}"
    );
    assert!(
        !first.join("UPLOADED").exists(),
        "the damaged lesson is not marked"
    );
    assert!(
        later.join("UPLOADED").exists(),
        "the later lesson was delivered"
    );
    assert_delivered(&dest.join(card.desk).join(format!("{name}-later")));
}

#[test]
fn a_cut_upload_resumes_and_a_damaged_copy_is_repaired() {
    let cards = copy_cards("teacher-side-cut");
    let card = &cards[0];
    let dest = scratch("teacher-side-cut-dest");
    let session = card_session(card);
    // A big video in the session (256 MiB, its MANIFEST updated), so the copy can be cut
    // mid-file.
    let padding = pseudo_random(256 << 20);
    std::fs::write(session.join("video.mp4"), &padding).unwrap();
    let manifest = firmware::record::session::manifest(&session).unwrap();
    std::fs::write(session.join("MANIFEST"), manifest).unwrap();

    // The cut: the whole upload (rsync included) killed as soon as the big file's copy
    // has started.
    let mut child = {
        use std::os::unix::process::CommandExt;
        Command::new(KIOSK)
            .args(["upload", "--config"])
            .arg(&card.config)
            .arg("--to")
            .arg(&dest)
            .process_group(0)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap()
    };
    let target = dest_session(&dest, card);
    let started = Instant::now();
    while !copying_padding(&target) {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the copy never started"
        );
        assert!(
            child.try_wait().unwrap().is_none(),
            "upload finished before the cut"
        );
        std::thread::sleep(Duration::from_millis(2));
    }
    let group = -(child.id() as i32);
    assert!(Command::new("kill")
        .args(["-KILL", "--", &group.to_string()])
        .status()
        .unwrap()
        .success());
    let _ = child.wait();
    assert!(
        !session.join("UPLOADED").exists(),
        "a cut session is not marked"
    );
    assert!(
        !target.join("COMPLETE").exists(),
        "a cut copy is not COMPLETE at the destination"
    );

    // Resumed: delivered, verified, marked.
    let out = assert_ok(&upload(card, dest.to_str().unwrap()), "resumed upload");
    assert!(out.contains("1 uploaded"), "{out}");
    assert_delivered(&target);
    assert_eq!(std::fs::read(target.join("video.mp4")).unwrap(), padding);
    assert!(session.join("UPLOADED").exists());

    // A copy damaged at the destination in a way rsync's quick check cannot see (same size,
    // same time), and the card's mark lost: the next run finds it by verifying, copies by
    // content and verifies again.
    let summary = target.join("summary.txt");
    let time = std::fs::metadata(&summary).unwrap().modified().unwrap();
    let mut text = std::fs::read(&summary).unwrap();
    text[0] ^= 0x20;
    std::fs::write(&summary, &text).unwrap();
    std::fs::File::options()
        .write(true)
        .open(&summary)
        .unwrap()
        .set_modified(time)
        .unwrap();
    std::fs::remove_file(session.join("UPLOADED")).unwrap();
    assert_ok(&upload(card, dest.to_str().unwrap()), "repairing upload");
    assert_delivered(&target);
    assert!(session.join("UPLOADED").exists());
}

/// Whether rsync has begun writing the big video (its temporary file, or the file itself).
fn copying_padding(target: &Path) -> bool {
    let Ok(entries) = std::fs::read_dir(target) else {
        return false;
    };
    entries.filter_map(|e| e.ok()).any(|e| {
        let name = e.file_name().to_string_lossy().into_owned();
        name.contains("video.mp4") && e.metadata().is_ok_and(|m| m.len() > 0)
    })
}

fn pseudo_random(len: usize) -> Vec<u8> {
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    (0..len / 8)
        .flat_map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state.to_le_bytes()
        })
        .collect()
}

/// A real OpenSSH server on 127.0.0.1, with its own host key and one authorised key.
struct Sshd {
    child: std::process::Child,
    port: u16,
    host_key_pub: String,
    client_key: PathBuf,
}

impl Sshd {
    fn start(dir: &Path) -> Sshd {
        let keygen = |path: &Path| {
            let status = Command::new("ssh-keygen")
                .args(["-q", "-t", "ed25519", "-N", "", "-f"])
                .arg(path)
                .status()
                .expect("ssh-keygen is installed (scripts/test.sh installs openssh-client)");
            assert!(status.success());
        };
        let host_key = dir.join("host_ed25519");
        let client_key = dir.join("desk_ed25519");
        keygen(&host_key);
        keygen(&client_key);
        std::fs::copy(dir.join("desk_ed25519.pub"), dir.join("authorized_keys")).unwrap();
        // sshd's privilege-separation directory, as the Debian service would make it.
        std::fs::create_dir_all("/run/sshd")
            .expect("cannot create /run/sshd (tests run as root in CI)");
        let port = free_port();
        let config = dir.join("sshd_config");
        std::fs::write(
            &config,
            format!(
                "Port {port}\nListenAddress 127.0.0.1\nHostKey {}\nAuthorizedKeysFile {}\n\
                 PidFile {}\nUsePAM no\nStrictModes no\nPasswordAuthentication no\n\
                 KbdInteractiveAuthentication no\nPermitRootLogin prohibit-password\n",
                host_key.display(),
                dir.join("authorized_keys").display(),
                dir.join("sshd.pid").display()
            ),
        )
        .unwrap();
        let child = Command::new("/usr/sbin/sshd")
            .args(["-D", "-e", "-f"])
            .arg(&config)
            .stderr(std::fs::File::create(dir.join("sshd.log")).unwrap())
            .spawn()
            .expect("/usr/sbin/sshd is installed (scripts/test.sh installs openssh-server)");
        let started = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "sshd did not start"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        let host_key_pub = std::fs::read_to_string(dir.join("host_ed25519.pub")).unwrap();
        Sshd {
            child,
            port,
            host_key_pub: host_key_pub.trim().to_owned(),
            client_key,
        }
    }
}

impl Drop for Sshd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn current_user() -> String {
    let out = Command::new("id").arg("-un").output().unwrap();
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

fn set_upload_config(card: &Card, ssh_key: &Path, host_key: &str) {
    let mut json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&card.config).unwrap()).unwrap();
    json["upload"] = serde_json::json!({ "ssh_key": ssh_key, "host_key": host_key });
    std::fs::write(&card.config, json.to_string()).unwrap();
}

/// A real sshd on 127.0.0.1 and the folder uploads land in (canonical: an ssh:// path is
/// plain and absolute, no `..`).
fn ssh_server(dir: &Path) -> (Sshd, PathBuf) {
    let sshd = Sshd::start(dir);
    let remote = dir.join("remote");
    std::fs::create_dir_all(&remote).unwrap();
    (sshd, std::fs::canonicalize(remote).unwrap())
}

/// `ssh://user@127.0.0.1:port/remote`.
fn ssh_url(sshd: &Sshd, remote: &Path) -> String {
    format!(
        "ssh://{}@127.0.0.1:{}{}",
        current_user(),
        sshd.port,
        remote.display()
    )
}

/// The school's server checks a delivered MANIFEST before `sha256sum` reads it: one that
/// names `/dev/zero` (a hostile desk's) is refused at once, before `sha256sum` starts, and
/// the session is not marked uploaded (issue 29).
#[test]
fn a_manifest_naming_a_device_is_refused_by_the_server_check() {
    let cards = copy_cards("teacher-side-hostile-manifest");
    let card = &cards[0];
    let dir = scratch("teacher-side-hostile-sshd");
    let (sshd, remote) = ssh_server(&dir);
    let to = ssh_url(&sshd, &remote);
    set_upload_config(card, &sshd.client_key, &sshd.host_key_pub);
    let session = card_session(card);
    let mut manifest = std::fs::read_to_string(session.join("MANIFEST")).unwrap();
    manifest.push_str(&format!("{}  /dev/zero\n", "0".repeat(64)));
    std::fs::write(session.join("MANIFEST"), manifest).unwrap();
    let started = Instant::now();
    let output = upload(card, &to);
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(!output.status.success(), "{said}");
    assert!(
        said.contains("not a SHA-256 and a plain file name"),
        "{said}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "{:?}",
        started.elapsed()
    );
    // The refusal is the check's own, before sha256sum was started (other tests here run
    // sha256sum at the same time, so no process list would prove more).
    assert!(!session.join("UPLOADED").exists());
}

#[test]
fn three_desks_upload_over_ssh_with_a_pinned_host_key() {
    let cards = copy_cards("teacher-side-ssh");
    let dir = scratch("teacher-side-sshd");
    let (sshd, remote) = ssh_server(&dir);
    let to = ssh_url(&sshd, &remote);

    // Another server's key: the desk refuses to talk, and marks nothing.
    let impostor = scratch("teacher-side-impostor");
    let status = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(impostor.join("key"))
        .status()
        .unwrap();
    assert!(status.success());
    let wrong_key = std::fs::read_to_string(impostor.join("key.pub")).unwrap();
    set_upload_config(&cards[0], &sshd.client_key, wrong_key.trim());
    let refused = upload(&cards[0], &to);
    assert!(
        !refused.status.success(),
        "a wrong host key must be refused"
    );
    assert!(!card_session(&cards[0]).join("UPLOADED").exists());

    for card in &cards {
        set_upload_config(card, &sshd.client_key, &sshd.host_key_pub);
        let out = assert_ok(&upload(card, &to), "ssh upload");
        assert!(out.contains("1 uploaded"), "{out}");
        assert_delivered(&dest_session(&remote, card));
    }
    let before = mtimes(&remote);
    for card in &cards {
        let out = assert_ok(&upload(card, &to), "second ssh upload");
        assert!(out.contains("0 uploaded"), "{out}");
    }
    assert_eq!(mtimes(&remote), before);
}

/// Delivered copies of the three cards (a directory destination), made once.
fn delivered() -> &'static Path {
    static DEST: OnceLock<PathBuf> = OnceLock::new();
    DEST.get_or_init(|| {
        let cards = copy_cards("teacher-side-report-cards");
        let dest = scratch("teacher-side-report-dest");
        for card in &cards {
            assert_ok(&upload(card, dest.to_str().unwrap()), "upload");
        }
        dest
    })
}

fn report(out: &Path, roots: &[&Path]) -> String {
    let output = Command::new(KIOSK)
        .arg("report")
        .arg("--out")
        .arg(out)
        .args(roots)
        .output()
        .unwrap();
    assert_ok(&output, "report")
}

#[test]
fn the_report_names_every_desk_and_rejects_a_tampered_session() {
    let dest = scratch("teacher-side-report-tampered");
    copy_tree(delivered(), &dest.join("share"));
    let share = dest.join("share");
    let out = dest.join("report");
    let said = report(&out, &[&share]);
    assert!(
        said.contains("1 lessons from 3 sessions of 3 desks; 0 sessions rejected"),
        "{said}"
    );

    let mut csv = csv::Reader::from_path(out.join("class.csv")).unwrap();
    let headers = csv.headers().unwrap().clone();
    let column = |name: &str| headers.iter().position(|h| h == name).unwrap();
    let rows: Vec<csv::StringRecord> = csv.records().map(|r| r.unwrap()).collect();
    let desks: Vec<&str> = rows.iter().map(|r| &r[column("desk_id")]).collect();
    assert_eq!(desks, DESKS, "a row per desk, in order");
    // Each desk's row agrees with the desk's own summary.
    for row in &rows {
        let summary = summary_of(&share, &row[column("desk_id")]);
        assert_eq!(
            row[column("impression")],
            *summary["impression"].as_str().unwrap()
        );
        assert_eq!(
            row[column("positive")],
            summary["reactions"]["counts"]["positive"].to_string()
        );
        // The report re-estimates the desk from its timeline and calibration: the desk's
        // own estimate, interval and all (one session a desk here).
        for (csv_column, summary_value) in [
            (
                "estimated_negative_percent",
                &summary["estimated"]["negative_percent"],
            ),
            (
                "estimated_negative_low",
                &summary["estimated"]["interval_90"]["negative"][0],
            ),
            (
                "estimated_negative_high",
                &summary["estimated"]["interval_90"]["negative"][1],
            ),
        ] {
            let reported: f64 = row[column(csv_column)].parse().unwrap();
            let own = summary_value.as_f64().unwrap();
            assert!(
                (reported - own).abs() < 1e-6,
                "{csv_column}: {reported} vs {own}"
            );
        }
        // The kiosk logs each second's probabilities and the model's calibration has its
        // scaling: re-weighted, by the kiosk and the report alike.
        assert_eq!(summary["estimated"]["method"], "calibrated-em");
        assert_eq!(row[column("lesson_id")], *"physics");
    }
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("class.json")).unwrap()).unwrap();
    let lesson = &json["lessons"][0];
    assert_eq!(lesson["desks"].as_array().unwrap().len(), 3);
    assert!(lesson["minutes"][0]["desks_with_face"].as_u64().unwrap() == 3);
    let page = out
        .join("lessons")
        .join(lesson["key"].as_str().unwrap())
        .join("index.html");
    assert!(page.exists());

    // One desk's summary changed after the fact: that session is listed, not used.
    let tampered = std::fs::read_dir(share.join("desk-02"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let summary = tampered.join("summary.txt");
    let mut text = std::fs::read(&summary).unwrap();
    text.extend_from_slice(b"edited\n");
    std::fs::write(&summary, text).unwrap();
    let said = report(&out, &[&share]);
    assert!(
        said.contains("from 2 sessions of 2 desks; 1 sessions rejected"),
        "{said}"
    );
    assert!(
        said.contains("summary.txt: SHA-256 differs from MANIFEST"),
        "{said}"
    );
    let index = std::fs::read_to_string(out.join("index.html")).unwrap();
    assert!(
        index.contains("SHA-256 differs"),
        "the index lists the rejected session"
    );
}

fn summary_of(share: &Path, desk: &str) -> serde_json::Value {
    let session = std::fs::read_dir(share.join(desk))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    serde_json::from_str(&std::fs::read_to_string(session.join("summary.json")).unwrap()).unwrap()
}

#[test]
fn the_report_renders_in_headless_chromium_with_the_three_series() {
    let dir = scratch("teacher-side-chromium");
    let out = dir.join("report");
    report(&out, &[delivered()]);
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("class.json")).unwrap()).unwrap();
    let page = out
        .join("lessons")
        .join(json["lessons"][0]["key"].as_str().unwrap())
        .join("index.html");
    // The set's index renders too, and shows the lesson's verdict.
    let index_png = dir.join("index.png");
    screenshot(
        &out.join("index.html"),
        &index_png,
        &dir.join("profile-index"),
    );
    let index = image::open(&index_png).unwrap().into_rgb8();
    let verdict_green = index.pixels().filter(|p| p.0 == [0x0b, 0x6b, 0x1d]).count();
    assert!(
        verdict_green > 20,
        "the index shows the class verdict ({verdict_green} px)"
    );
    let png = dir.join("lesson.png");
    screenshot(&page, &png, &dir.join("profile"));
    let image = image::open(&png).unwrap().into_rgb8();
    // The series colours of the chart (firmware's timeline colours) are on the page, as
    // data: the chart has no drawn key and no text uses them, so each colour here is the
    // point (and line) of its series.
    for (name, colour) in [
        ("positive", [20u8, 160, 40]),
        ("neutral", [40, 90, 220]),
        ("negative", [220, 40, 30]),
    ] {
        let pixels = image
            .pixels()
            .filter(|p| (0..3).all(|c| p[c].abs_diff(colour[c]) < 12))
            .count();
        assert!(
            pixels > 40,
            "{name} series colour: {pixels} pixels in the screenshot"
        );
    }
}

/// Headless Chromium's screenshot of a local page (no network, fresh profile).
fn screenshot(page: &Path, png: &Path, profile: &Path) {
    let output = Command::new("chromium")
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--hide-scrollbars",
            "--window-size=1000,1300",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg(format!("--screenshot={}", png.display()))
        .arg(format!("file://{}", page.display()))
        .output()
        .expect("chromium is installed (scripts/test.sh installs Debian's chromium)");
    assert!(
        output.status.success() && png.exists(),
        "chromium failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}
