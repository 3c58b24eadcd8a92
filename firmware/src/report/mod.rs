//! `kiosk report`: the teacher's class report from many desks' sessions.
//!
//! [`scan`] finds and verifies the sessions under the roots, [`lessons`] groups them into
//! lessons and sums each, [`chart`] draws the class's minutes as SVG and [`html`] writes the
//! pages. The output folder gets:
//! - `index.html`, `class.csv` (a row per desk per lesson) and `class.json` (the same, with
//!   each lesson's per-minute series and the rejected sessions) for the whole set;
//! - `lessons/<key>/index.html`, `class.csv` and `class.json` for each lesson.
//!
//! It streams: the scan keeps a small entry per session, lessons are read a batch at a time
//! (in parallel) and written in order, and the set's CSV and JSON are appended lesson by
//! lesson; only a line per lesson is kept for the index.

pub mod chart;
pub mod html;
pub mod lessons;
pub mod scan;

use std::collections::HashSet;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use ekspresi_common::fsutil::write_atomically;
use ekspresi_common::guard::quietly;
use serde::Serialize;

use crate::record::summary::Intervals;

use html::LessonLine;
use lessons::LessonReport;
use scan::Rejected;

/// What stops a report (a session that cannot be used does not: it is listed).
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {source}")]
    Csv { path: PathBuf, source: csv::Error },
    #[error("{path}: {source}")]
    Json {
        path: PathBuf,
        source: serde_json::Error,
    },
    #[error("chart of lesson {lesson}: {reason}")]
    Chart { lesson: String, reason: String },
    /// A bug: a reading or writing thread panicked (its message, no backtrace printed).
    #[error("the report stopped on an internal error: {0}")]
    Internal(String),
}

/// What was written.
#[derive(Debug)]
pub struct ReportWritten {
    pub lessons: usize,
    pub sessions: usize,
    pub desks: usize,
    pub rejected: Vec<Rejected>,
}

/// A text cell of `class.csv` written so that a spreadsheet shows it as text: a cell a desk
/// chose that starts with `=`, `+`, `-`, `@`, a tab or a carriage return would otherwise run
/// as a formula when the teacher opens the file (OWASP's CSV injection); such a cell gets a
/// leading `'`, which spreadsheets hide.
struct TextCell<'a>(&'a str);

impl Serialize for TextCell<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        if self.0.starts_with(['=', '+', '-', '@', '\t', '\r']) {
            serializer.serialize_str(&format!("'{}", self.0))
        } else {
            serializer.serialize_str(self.0)
        }
    }
}

/// One row of `class.csv`.
#[derive(Serialize)]
struct ClassRow<'a> {
    lesson: TextCell<'a>,
    lesson_id: Option<TextCell<'a>>,
    lesson_start: TextCell<'a>,
    lesson_end: TextCell<'a>,
    desk_id: TextCell<'a>,
    sessions: usize,
    frames_analysed: u64,
    frames_with_face: u64,
    face_seconds: u64,
    /// Faces as the model classified them.
    positive: u64,
    neutral: u64,
    negative: u64,
    /// The estimated shares (corrected for the model's confusions) and their 90 % intervals.
    estimated_positive_percent: f64,
    estimated_positive_low: Option<f64>,
    estimated_positive_high: Option<f64>,
    estimated_neutral_percent: f64,
    estimated_neutral_low: Option<f64>,
    estimated_neutral_high: Option<f64>,
    estimated_negative_percent: f64,
    estimated_negative_low: Option<f64>,
    estimated_negative_high: Option<f64>,
    impression: &'static str,
    verdict_within_error: bool,
    class_impression: &'static str,
    class_verdict_within_error: bool,
}

/// A rejected session in `class.json`.
#[derive(Serialize)]
struct RejectedJson<'a> {
    path: String,
    reason: &'a str,
}

const JSON_SCHEMA_VERSION: u32 = 1;

/// Lessons held in memory at once (read in parallel, then written).
const LESSONS_PER_BATCH: usize = 16;

/// Reads every session under `roots` and writes the report into `out`.
pub fn write_report(
    roots: &[PathBuf],
    out: &Path,
    progress: impl FnMut(usize),
) -> Result<ReportWritten, ReportError> {
    let (sessions, rejected) = scan::scan(roots, progress);
    let groups = lessons::group(sessions);
    create_dir(out)?;
    let mut writer = Writer::create(out, rejected)?;
    // Lessons are read on every core, a few at a time, while a thread of its own writes the
    // batch before (each file is synced, so writing waits on the disk): at most two batches
    // are in memory.
    let (batches, received) = std::sync::mpsc::sync_channel::<Vec<ReadLesson>>(1);
    std::thread::scope(|scope| {
        let writing = scope.spawn(|| {
            quietly(|| -> Result<(), ReportError> {
                for batch in received {
                    batch.into_iter().try_for_each(|read| writer.lesson(read))?;
                }
                Ok(())
            })
            .map_err(ReportError::Internal)?
        });
        let reading = quietly(|| {
            for batch in groups.chunks(LESSONS_PER_BATCH) {
                use rayon::prelude::*;
                let read: Vec<ReadLesson> = batch.par_iter().map(lessons::read_lesson).collect();
                // The writer stopped on an error: it is reported below.
                if batches.send(read).is_err() {
                    break;
                }
            }
            drop(batches);
        });
        // The writer's error first: a reader that stopped leaves the writer's end closed.
        let written = writing
            .join()
            .unwrap_or_else(|_| Err(ReportError::Internal("the writing thread panicked".into())));
        written?;
        reading.map_err(ReportError::Internal)
    })?;
    writer.finish()
}

/// A lesson as read, with the sessions that could not be read now.
type ReadLesson = (LessonReport, Vec<Rejected>);

/// The report's files across lessons, written as lessons arrive in order.
struct Writer {
    out: PathBuf,
    set_csv: CsvOut,
    set_json: JsonOut,
    lines: Vec<LessonLine>,
    keys: HashSet<String>,
    rejected: Vec<Rejected>,
    /// Counted from the lessons as read: a session that changed since the scan is rejected.
    session_count: usize,
    desks: HashSet<String>,
}

impl Writer {
    fn create(out: &Path, rejected: Vec<Rejected>) -> Result<Self, ReportError> {
        Ok(Self {
            out: out.to_owned(),
            set_csv: CsvOut::create(&out.join("class.csv"))?,
            set_json: JsonOut::create(&out.join("class.json"))?,
            lines: Vec::new(),
            keys: HashSet::new(),
            rejected,
            session_count: 0,
            desks: HashSet::new(),
        })
    }

    fn lesson(&mut self, (mut lesson, unreadable): ReadLesson) -> Result<(), ReportError> {
        self.rejected.extend(unreadable);
        for desk in &lesson.desks {
            self.session_count += desk.sessions;
            self.desks.insert(desk.desk_id.clone());
        }
        lesson.key = unique_key(&mut self.keys, lesson.key);
        write_lesson(&self.out, &lesson)?;
        self.set_csv.lesson(&lesson)?;
        self.set_json.lesson(&lesson)?;
        self.lines.push(LessonLine::of(&lesson));
        Ok(())
    }

    fn finish(self) -> Result<ReportWritten, ReportError> {
        self.set_csv.finish()?;
        self.set_json.finish(&self.rejected)?;
        let index = self.out.join("index.html");
        write_atomically(
            &index,
            html::index_page(&self.lines, &self.rejected).as_bytes(),
        )
        .map_err(io_error(&index))?;
        Ok(ReportWritten {
            lessons: self.lines.len(),
            sessions: self.session_count,
            desks: self.desks.len(),
            rejected: self.rejected,
        })
    }
}

/// A lesson's own folder: its page, and its rows as CSV and JSON.
fn write_lesson(out: &Path, lesson: &LessonReport) -> Result<(), ReportError> {
    let dir = out.join("lessons").join(&lesson.key);
    create_dir(&dir)?;
    let svg = chart::class_chart(&lesson.minutes, lesson.desks.len()).map_err(|reason| {
        ReportError::Chart {
            lesson: lesson.key.clone(),
            reason,
        }
    })?;
    let page = dir.join("index.html");
    write_atomically(&page, html::lesson_page(lesson, &svg).as_bytes()).map_err(io_error(&page))?;
    let mut csv = CsvOut::create(&dir.join("class.csv"))?;
    csv.lesson(lesson)?;
    csv.finish()?;
    let mut json = JsonOut::create(&dir.join("class.json"))?;
    json.lesson(lesson)?;
    json.finish(&[])
}

fn unique_key(keys: &mut HashSet<String>, key: String) -> String {
    let mut candidate = key.clone();
    let mut n = 1;
    while !keys.insert(candidate.clone()) {
        n += 1;
        candidate = format!("{key}-{n}");
    }
    candidate
}

fn create_dir(dir: &Path) -> Result<(), ReportError> {
    std::fs::create_dir_all(dir).map_err(io_error(dir))
}

fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> ReportError + '_ {
    move |source| ReportError::Io {
        path: path.to_owned(),
        source,
    }
}

/// A file written through `<name>.tmp` and renamed into place when finished.
struct Staged {
    tmp: PathBuf,
    path: PathBuf,
}

impl Staged {
    fn new(path: &Path) -> Self {
        let mut tmp = path.as_os_str().to_owned();
        tmp.push(".tmp");
        Self {
            tmp: tmp.into(),
            path: path.to_owned(),
        }
    }

    fn open(&self) -> Result<BufWriter<std::fs::File>, ReportError> {
        std::fs::File::create(&self.tmp)
            .map(BufWriter::new)
            .map_err(io_error(&self.tmp))
    }

    fn commit(&self, writer: BufWriter<std::fs::File>) -> Result<(), ReportError> {
        let file = writer.into_inner().map_err(|e| ReportError::Io {
            path: self.tmp.clone(),
            source: e.into_error(),
        })?;
        file.sync_all().map_err(io_error(&self.tmp))?;
        std::fs::rename(&self.tmp, &self.path).map_err(io_error(&self.path))
    }
}

/// `class.csv`, a row per desk per lesson.
struct CsvOut {
    staged: Staged,
    writer: csv::Writer<BufWriter<std::fs::File>>,
}

impl CsvOut {
    fn create(path: &Path) -> Result<Self, ReportError> {
        let staged = Staged::new(path);
        let writer = csv::Writer::from_writer(staged.open()?);
        Ok(Self { staged, writer })
    }

    fn lesson(&mut self, lesson: &LessonReport) -> Result<(), ReportError> {
        for desk in &lesson.desks {
            let interval =
                |pick: fn(&Intervals) -> f64| desk.estimated.as_ref().map(|e| pick(&e.interval_90));
            let row = ClassRow {
                lesson: TextCell(&lesson.key),
                lesson_id: lesson.lesson_id.as_deref().map(TextCell),
                lesson_start: TextCell(&lesson.start),
                lesson_end: TextCell(&lesson.end),
                desk_id: TextCell(&desk.desk_id),
                sessions: desk.sessions,
                frames_analysed: desk.frames_analysed,
                frames_with_face: desk.frames_with_face,
                face_seconds: desk.face_seconds,
                positive: desk.counts.positive,
                neutral: desk.counts.neutral,
                negative: desk.counts.negative,
                estimated_positive_percent: desk.positive_percent,
                estimated_positive_low: interval(|i| i.positive[0]),
                estimated_positive_high: interval(|i| i.positive[1]),
                estimated_neutral_percent: desk.neutral_percent,
                estimated_neutral_low: interval(|i| i.neutral[0]),
                estimated_neutral_high: interval(|i| i.neutral[1]),
                estimated_negative_percent: desk.negative_percent,
                estimated_negative_low: interval(|i| i.negative[0]),
                estimated_negative_high: interval(|i| i.negative[1]),
                impression: desk.impression.word(),
                verdict_within_error: desk
                    .estimated
                    .as_ref()
                    .is_some_and(|e| e.verdict_within_error),
                class_impression: lesson.class_impression.word(),
                class_verdict_within_error: lesson
                    .class_estimated
                    .as_ref()
                    .is_some_and(|e| e.verdict_within_error),
            };
            self.writer
                .serialize(row)
                .map_err(|source| ReportError::Csv {
                    path: self.staged.path.clone(),
                    source,
                })?;
        }
        Ok(())
    }

    fn finish(self) -> Result<(), ReportError> {
        let path = self.staged.path.clone();
        let writer = self.writer.into_inner().map_err(|e| ReportError::Io {
            path,
            source: std::io::Error::other(e.to_string()),
        })?;
        self.staged.commit(writer)
    }
}

/// `class.json`: `{"schema_version", "lessons": [...], "rejected": [...]}`, written lesson
/// by lesson.
struct JsonOut {
    staged: Staged,
    writer: BufWriter<std::fs::File>,
    lessons: usize,
}

impl JsonOut {
    fn create(path: &Path) -> Result<Self, ReportError> {
        let staged = Staged::new(path);
        let mut writer = staged.open()?;
        write!(
            writer,
            "{{\"schema_version\":{JSON_SCHEMA_VERSION},\"lessons\":["
        )
        .map_err(io_error(&staged.tmp))?;
        Ok(Self {
            staged,
            writer,
            lessons: 0,
        })
    }

    fn lesson(&mut self, lesson: &LessonReport) -> Result<(), ReportError> {
        if self.lessons > 0 {
            self.writer
                .write_all(b",")
                .map_err(io_error(&self.staged.tmp))?;
        }
        serde_json::to_writer(&mut self.writer, lesson).map_err(|source| ReportError::Json {
            path: self.staged.path.clone(),
            source,
        })?;
        self.lessons += 1;
        Ok(())
    }

    fn finish(mut self, rejected: &[Rejected]) -> Result<(), ReportError> {
        let rejected: Vec<RejectedJson<'_>> = rejected
            .iter()
            .map(|(path, reason)| RejectedJson {
                path: path.display().to_string(),
                reason,
            })
            .collect();
        self.writer
            .write_all(b"],\"rejected\":")
            .map_err(io_error(&self.staged.tmp))?;
        serde_json::to_writer(&mut self.writer, &rejected).map_err(|source| ReportError::Json {
            path: self.staged.path.clone(),
            source,
        })?;
        self.writer
            .write_all(b"}\n")
            .map_err(io_error(&self.staged.tmp))?;
        self.staged.commit(self.writer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cells_a_spreadsheet_would_run_as_formulas_are_written_as_text() {
        let mut writer = csv::Writer::from_writer(Vec::new());
        let cells = [
            "=HYPERLINK(\"http://x\")",
            "+1",
            "-2+3",
            "@SUM(A1)",
            "\tx",
            "\rx",
            "desk-7",
            "2026-11-02T09:00:00Z",
            "",
        ];
        writer
            .serialize(cells.iter().map(|c| TextCell(c)).collect::<Vec<_>>())
            .unwrap();
        let text = String::from_utf8(writer.into_inner().unwrap()).unwrap();
        let mut reader = csv::ReaderBuilder::new()
            .has_headers(false)
            .from_reader(text.as_bytes());
        let row = reader.records().next().unwrap().unwrap();
        let read: Vec<&str> = row.iter().collect();
        assert_eq!(
            read,
            [
                "'=HYPERLINK(\"http://x\")",
                "'+1",
                "'-2+3",
                "'@SUM(A1)",
                "'\tx",
                "'\rx",
                "desk-7",
                "2026-11-02T09:00:00Z",
                ""
            ]
        );
    }
}
