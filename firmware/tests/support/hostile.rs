//! Hostile session folders (issue 29), made from an honest one: each of the audit's
//! classes — names that would become paths, links and special files, unbounded files, numbers
//! that lie, a desk speaking for another, broken MANIFESTs, timelines and times — as a
//! session a desk could upload, with the reason the report must give for rejecting it. A
//! hostile desk controls every byte it uploads, so each is resealed (its MANIFEST rewritten to
//! match) unless the MANIFEST itself is the attack. Shared by `tests/hostile_desk.rs` and the
//! `report_scale` bench.

use std::path::{Path, PathBuf};

use firmware::record::session::{manifest, COMPLETE, MANIFEST, SUMMARY_JSON, TIMELINE_CSV, VIDEO};
use serde_json::{json, Value};

/// One hostile session: where the report finds it and what its rejection must say.
pub struct Hostile {
    pub path: PathBuf,
    pub what: &'static str,
    pub reason: &'static str,
}

struct Kind {
    what: &'static str,
    reason: &'static str,
    make: fn(&Maker, usize) -> PathBuf,
}

/// Makes hostile sessions under `root` from an honest session folder `template`.
pub struct Maker {
    template: PathBuf,
    root: PathBuf,
    /// A file of the teacher's outside every session (what links point at).
    pub secret: PathBuf,
}

impl Maker {
    pub fn new(template: &Path, root: &Path) -> Self {
        std::fs::create_dir_all(root).unwrap();
        let secret = root.with_extension("teachers-secret");
        std::fs::write(&secret, b"the teacher's own file\n").unwrap();
        Self {
            template: template.to_owned(),
            root: root.to_owned(),
            secret,
        }
    }

    /// `count` hostile sessions, every kind in turn.
    pub fn make(&self, count: usize) -> Vec<Hostile> {
        (0..count)
            .map(|index| {
                let kind = &KINDS[index % KINDS.len()];
                Hostile {
                    path: (kind.make)(self, index),
                    what: kind.what,
                    reason: kind.reason,
                }
            })
            .collect()
    }

    /// The number of kinds (a count of at least this makes every one).
    pub fn kinds() -> usize {
        KINDS.len()
    }

    /// A copy of the template (its video left out) in `root/<folder>/`, its desk id set to
    /// the folder's name, resealed.
    fn copy(&self, folder: &str) -> PathBuf {
        let dir = self
            .root
            .join(folder)
            .join(self.template.file_name().unwrap());
        std::fs::create_dir_all(&dir).unwrap();
        for entry in std::fs::read_dir(&self.template).unwrap() {
            let entry = entry.unwrap();
            let name = entry.file_name();
            if name != VIDEO && entry.file_type().unwrap().is_file() {
                std::fs::copy(entry.path(), dir.join(&name)).unwrap();
            }
        }
        edit(&dir, |summary| summary["desk_id"] = json!(folder));
        dir
    }

    fn desk(&self, index: usize) -> PathBuf {
        self.copy(&format!("h{index:03}"))
    }
}

/// Changes the session's summary.json and reseals the session.
fn edit(dir: &Path, change: impl FnOnce(&mut Value)) {
    let path = dir.join(SUMMARY_JSON);
    let mut summary: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    change(&mut summary);
    std::fs::write(&path, serde_json::to_vec_pretty(&summary).unwrap()).unwrap();
    reseal(dir);
}

/// Rewrites the MANIFEST to match the files (what a hostile desk does after its edits).
fn reseal(dir: &Path) {
    std::fs::write(dir.join(MANIFEST), manifest(dir).unwrap()).unwrap();
}

fn replace_with_link(dir: &Path, name: &str, target: &Path) {
    std::fs::remove_file(dir.join(name)).unwrap();
    std::os::unix::fs::symlink(target, dir.join(name)).unwrap();
}

fn replace_with_fifo(dir: &Path, name: &str) {
    let _ = std::fs::remove_file(dir.join(name));
    let status = std::process::Command::new("mkfifo")
        .arg(dir.join(name))
        .status()
        .unwrap();
    assert!(status.success());
}

/// `name` becomes a sparse file of `bytes` (zeros, costing no disk).
fn sparse(dir: &Path, name: &str, bytes: u64) {
    let file = std::fs::File::create(dir.join(name)).unwrap();
    file.set_len(bytes).unwrap();
}

/// Adds a MANIFEST line for a file the kiosk's writer would not list (a link, a FIFO).
fn list_too(dir: &Path, name: &str) {
    let mut text = std::fs::read_to_string(dir.join(MANIFEST)).unwrap();
    text.push_str(&format!("{}  {name}\n", "0".repeat(64)));
    std::fs::write(dir.join(MANIFEST), text).unwrap();
}

fn set_lesson_id(m: &Maker, index: usize, id: String) -> PathBuf {
    let dir = m.desk(index);
    edit(&dir, |s| s["lesson_id"] = json!(id));
    dir
}

fn timeline_rows(dir: &Path, rows: impl FnOnce(&str) -> String) {
    let path = dir.join(TIMELINE_CSV);
    let text = std::fs::read_to_string(&path).unwrap();
    std::fs::write(&path, rows(&text)).unwrap();
    reseal(dir);
}

const GIB: u64 = 1 << 30;

const KINDS: &[Kind] = &[
    Kind {
        what: "lesson id climbing out of --out",
        reason: "is not a lesson id",
        make: |m, i| set_lesson_id(m, i, "../../escaped-by-a-desk".into()),
    },
    Kind {
        what: "absolute lesson id",
        reason: "is not a lesson id",
        make: |m, i| set_lesson_id(m, i, "/tmp/ekspresi-written-by-a-desk".into()),
    },
    Kind {
        what: "300-character lesson id",
        reason: "is not a lesson id",
        make: |m, i| set_lesson_id(m, i, "a".repeat(300)),
    },
    Kind {
        what: "lesson id with a NUL byte",
        reason: "is not a lesson id",
        make: |m, i| set_lesson_id(m, i, "phys\u{0}ics".into()),
    },
    Kind {
        what: "lesson id that breaks links",
        reason: "is not a lesson id",
        make: |m, i| set_lesson_id(m, i, "a#b?c%d".into()),
    },
    Kind {
        what: "lesson id that is a spreadsheet formula",
        reason: "is not a lesson id",
        make: |m, i| set_lesson_id(m, i, "=HYPERLINK(\"http://evil\",\"x\")".into()),
    },
    Kind {
        what: "desk id that is a spreadsheet formula (in a folder of that name)",
        reason: "is not a desk id",
        make: |m, i| m.copy(&format!("={i}+1")),
    },
    Kind {
        what: "desk folder with terminal escapes",
        reason: "is not a desk id",
        make: |m, i| m.copy(&format!("\u{1b}]0;owned{i}\u{7}\u{1b}[2K")),
    },
    Kind {
        what: "a session speaking for another desk",
        reason: "is not the desk folder",
        make: |m, i| {
            let dir = m.desk(i);
            edit(&dir, |s| s["desk_id"] = json!("desk-01"));
            dir
        },
    },
    Kind {
        what: "timeline.csv a link to the teacher's file",
        reason: "timeline.csv: a symbolic link, not a regular file",
        make: |m, i| {
            let dir = m.desk(i);
            replace_with_link(&dir, TIMELINE_CSV, &m.secret);
            dir
        },
    },
    Kind {
        what: "video.mp4 a link to /etc/passwd",
        reason: "video.mp4: a symbolic link, not a regular file",
        make: |m, i| {
            let dir = m.desk(i);
            std::os::unix::fs::symlink("/etc/passwd", dir.join(VIDEO)).unwrap();
            list_too(&dir, VIDEO);
            dir
        },
    },
    Kind {
        what: "video.mp4 a link to /dev/zero",
        reason: "video.mp4: a symbolic link, not a regular file",
        make: |m, i| {
            let dir = m.desk(i);
            std::os::unix::fs::symlink("/dev/zero", dir.join(VIDEO)).unwrap();
            list_too(&dir, VIDEO);
            dir
        },
    },
    Kind {
        what: "summary.json a named pipe",
        reason: "summary.json: a named pipe, not a regular file",
        make: |m, i| {
            let dir = m.desk(i);
            replace_with_fifo(&dir, SUMMARY_JSON);
            dir
        },
    },
    Kind {
        what: "video.mp4 a named pipe",
        reason: "video.mp4: a named pipe, not a regular file",
        make: |m, i| {
            let dir = m.desk(i);
            replace_with_fifo(&dir, VIDEO);
            list_too(&dir, VIDEO);
            dir
        },
    },
    Kind {
        what: "summary.json a folder",
        reason: "summary.json: a folder, not a regular file",
        make: |m, i| {
            let dir = m.desk(i);
            std::fs::remove_file(dir.join(SUMMARY_JSON)).unwrap();
            std::fs::create_dir(dir.join(SUMMARY_JSON)).unwrap();
            dir
        },
    },
    Kind {
        what: "4 GiB of zeros as MANIFEST",
        reason: "MANIFEST: 4294967296 bytes, over the",
        make: |m, i| {
            let dir = m.desk(i);
            sparse(&dir, MANIFEST, 4 * GIB);
            dir
        },
    },
    Kind {
        what: "4 GiB of zeros as summary.json",
        reason: "summary.json: 4294967296 bytes, over the",
        make: |m, i| {
            let dir = m.desk(i);
            sparse(&dir, SUMMARY_JSON, 4 * GIB);
            dir
        },
    },
    Kind {
        what: "4 GiB of zeros as timeline.csv",
        reason: "timeline.csv: 4294967296 bytes, over the",
        make: |m, i| {
            let dir = m.desk(i);
            sparse(&dir, TIMELINE_CSV, 4 * GIB);
            dir
        },
    },
    Kind {
        what: "a 70 GiB sparse video",
        reason: "video.mp4: 75161927680 bytes, over the",
        make: |m, i| {
            let dir = m.desk(i);
            sparse(&dir, VIDEO, 70 * GIB);
            list_too(&dir, VIDEO);
            dir
        },
    },
    Kind {
        what: "MANIFEST naming one file 10,000 times",
        reason: "lists summary.json a second time",
        make: |m, i| {
            let dir = m.desk(i);
            let text = std::fs::read_to_string(dir.join(MANIFEST)).unwrap();
            let line = text.lines().find(|l| l.ends_with(SUMMARY_JSON)).unwrap();
            std::fs::write(dir.join(MANIFEST), format!("{line}\n").repeat(10_000)).unwrap();
            dir
        },
    },
    Kind {
        what: "MANIFEST naming a file of another session",
        reason: "is not `<sha256>  <plain file name>`",
        make: |m, i| {
            let dir = m.desk(i);
            list_too(&dir, "../../desk-01/x/summary.json");
            dir
        },
    },
    Kind {
        what: "MANIFEST naming /dev/zero",
        reason: "is not `<sha256>  <plain file name>`",
        make: |m, i| {
            let dir = m.desk(i);
            list_too(&dir, "/dev/zero");
            dir
        },
    },
    Kind {
        what: "no MANIFEST",
        reason: "MANIFEST: missing",
        make: |m, i| {
            let dir = m.desk(i);
            std::fs::remove_file(dir.join(MANIFEST)).unwrap();
            dir
        },
    },
    Kind {
        what: "not COMPLETE",
        reason: "not COMPLETE",
        make: |m, i| {
            let dir = m.desk(i);
            std::fs::remove_file(dir.join(COMPLETE)).unwrap();
            dir
        },
    },
    Kind {
        what: "counts near 2^64",
        reason: "counts",
        make: |m, i| {
            let dir = m.desk(i);
            edit(&dir, |s| {
                s["reactions"]["counts"]["negative"] = json!(u64::MAX - 3);
                s["reactions"]["counts"]["positive"] = json!(7);
            });
            dir
        },
    },
    Kind {
        what: "1,000,000 faces in the frames analysed",
        reason: "counts disagree",
        make: |m, i| {
            let dir = m.desk(i);
            edit(&dir, |s| s["frames_with_face"] = json!(1_000_000));
            dir
        },
    },
    Kind {
        what: "counts that disagree with its own timeline",
        reason: "timeline.csv disagrees with summary.json",
        make: |m, i| {
            let dir = m.desk(i);
            edit(&dir, |s| {
                let counts = &mut s["reactions"]["counts"];
                let moved = counts["positive"].as_u64().unwrap();
                counts["positive"] = json!(0);
                let negative = counts["negative"].as_u64().unwrap();
                counts["negative"] = json!(negative + moved);
            });
            dir
        },
    },
    Kind {
        what: "a lesson ending a year after it starts",
        reason: "longer than a lesson can be",
        make: |m, i| {
            let dir = m.desk(i);
            edit(&dir, |s| {
                let start = humantime::parse_rfc3339(s["lesson_start"].as_str().unwrap()).unwrap();
                let end = start + std::time::Duration::from_secs(365 * 86_400);
                s["lesson_end"] = json!(humantime::format_rfc3339_seconds(end).to_string());
            });
            dir
        },
    },
    Kind {
        what: "a lesson ending 8,000 years after it starts",
        reason: "longer than a lesson can be",
        make: |m, i| {
            let dir = m.desk(i);
            edit(&dir, |s| s["lesson_end"] = json!("9999-12-31T23:59:59Z"));
            dir
        },
    },
    Kind {
        what: "a start that is no time",
        reason: "lesson_start",
        make: |m, i| {
            let dir = m.desk(i);
            edit(&dir, |s| s["lesson_start"] = json!("yesterday; rm -rf /"));
            dir
        },
    },
    Kind {
        what: "a schema from the future",
        reason: "schema_version 999",
        make: |m, i| {
            let dir = m.desk(i);
            edit(&dir, |s| s["schema_version"] = json!(999));
            dir
        },
    },
    Kind {
        what: "summary.json that is not JSON",
        reason: "summary.json:",
        make: |m, i| {
            let dir = m.desk(i);
            std::fs::write(dir.join(SUMMARY_JSON), b"\xff\xfe not json").unwrap();
            reseal(&dir);
            dir
        },
    },
    Kind {
        what: "summary.json nested 100,000 deep",
        reason: "summary.json:",
        make: |m, i| {
            let dir = m.desk(i);
            std::fs::write(dir.join(SUMMARY_JSON), "[".repeat(100_000)).unwrap();
            reseal(&dir);
            dir
        },
    },
    Kind {
        what: "a calibration that is no confusion matrix",
        reason: "calibration",
        make: |m, i| {
            let dir = m.desk(i);
            edit(&dir, |s| {
                // Every face given every category alike: nothing to undo.
                s["calibration"] = json!({
                    "validation_of": "x",
                    "category_confusion": [[100, 100, 100], [100, 100, 100], [100, 100, 100]],
                })
            });
            dir
        },
    },
    Kind {
        what: "timeline rows out of order",
        reason: "out of order",
        make: |m, i| {
            let dir = m.desk(i);
            timeline_rows(&dir, |text| {
                let mut lines: Vec<&str> = text.lines().collect();
                lines.swap(1, 2);
                lines.join("\n") + "\n"
            });
            dir
        },
    },
    Kind {
        what: "a timeline row of negative counts",
        reason: "not the header's counts",
        make: |m, i| {
            let dir = m.desk(i);
            timeline_rows(&dir, |text| format!("{text}99999,-1,-1,-1,-1\n"));
            dir
        },
    },
    Kind {
        what: "a timeline longer than a lesson",
        reason: "longer than a lesson can be",
        make: |m, i| {
            let dir = m.desk(i);
            timeline_rows(&dir, |text| {
                let mut out = text.to_owned();
                let start = text.lines().count() - 1;
                // Rows as the header has them: with the seven probability columns (zero
                // without a face) when the kiosk logged them.
                let probabilities =
                    if text.starts_with("second,positive,neutral,negative,no_face,p_") {
                        ",0,0,0,0,0,0,0"
                    } else {
                        ""
                    };
                for second in start..50_000 {
                    out.push_str(&format!("{second},0,0,0,1{probabilities}\n"));
                }
                out
            });
            dir
        },
    },
    Kind {
        what: "a session folder that is a link to an honest session",
        reason: "a symbolic link: not followed",
        make: |m, i| {
            let desk = m.root.join(format!("h{i:03}"));
            std::fs::create_dir_all(&desk).unwrap();
            let link = desk.join(m.template.file_name().unwrap());
            std::os::unix::fs::symlink(&m.template, &link).unwrap();
            link
        },
    },
];
