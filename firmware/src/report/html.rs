//! The report's pages, each one self-contained HTML file (inline CSS and SVG, no script, no
//! network): a page per lesson and an index of all lessons. maud writes the HTML, so every
//! value from a session (desk ids, lesson ids, paths) is escaped.

use maud::{html, Markup, PreEscaped, DOCTYPE};

use super::lessons::{DeskRow, LessonReport};
use super::scan::Rejected;
use crate::aggregate::Impression;
use crate::record::summary::Estimated;

/// Said on every page, as in the firmware's own help.
const RESPONSIBLE_USE: &str = "These are aggregate trends of an expression model that is right \
on about 3 in 5 unseen faces, weakest on disgust, fear and sad. Read them as how the class \
reacted over the lesson, never as a judgement of one student. Emotion recognition in \
education is regulated (in the EU, prohibited in education institutions): use it only where \
the law allows, with informed consent.";

/// Verdict colours are darker than the chart's series colours, so a series colour on the
/// page is always the chart's.
const STYLE: &str = "body{font-family:sans-serif;margin:24px;color:#222;max-width:1000px}\
table{border-collapse:collapse;margin:12px 0}td,th{border:1px solid #ccc;padding:4px 8px;\
text-align:right}th{background:#f2f2f2}td.name{text-align:left}\
.note{background:#fff8e1;border-left:4px solid #f0b400;padding:8px 12px;margin:12px 0}\
.good{color:#0b6b1d;font-weight:bold}.bad{color:#a3150f;font-weight:bold}\
.insufficient{color:#777;font-weight:bold}.verdict{font-size:1.4em}";

/// One line of the index: what the lesson page says at the top.
#[derive(Debug, Clone)]
pub struct LessonLine {
    pub key: String,
    pub lesson_id: Option<String>,
    pub start: String,
    pub end: String,
    pub desks: usize,
    pub judged_desks: usize,
    pub class_impression: Impression,
    pub shares: Option<(f64, f64, f64)>,
    /// The class verdict could go either way within the models' error.
    pub within_error: bool,
}

impl LessonLine {
    pub fn of(lesson: &LessonReport) -> Self {
        let shares = match (
            lesson.class_positive_percent,
            lesson.class_neutral_percent,
            lesson.class_negative_percent,
        ) {
            (Some(p), Some(n), Some(neg)) => Some((p, n, neg)),
            _ => None,
        };
        Self {
            key: lesson.key.clone(),
            lesson_id: lesson.lesson_id.clone(),
            start: lesson.start.clone(),
            end: lesson.end.clone(),
            desks: lesson.desks.len(),
            judged_desks: lesson
                .desks
                .iter()
                .filter(|d| d.impression != Impression::Insufficient)
                .count(),
            class_impression: lesson.class_impression,
            shares,
            within_error: lesson
                .class_estimated
                .as_ref()
                .is_some_and(|e| e.verdict_within_error),
        }
    }
}

fn page(title: &str, body: Markup) -> String {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                title { (title) }
                style { (PreEscaped(STYLE)) }
            }
            body {
                h1 { (title) }
                p.note { (RESPONSIBLE_USE) }
                (body)
            }
        }
    }
    .into_string()
}

fn verdict(impression: Impression) -> Markup {
    html! { span class=(impression.word()) { (impression.word()) } }
}

fn percent(value: Option<f64>) -> String {
    value.map_or_else(|| "–".to_owned(), |v| format!("{v:.1} %"))
}

/// "42.0 % (35–49)": a share and its 90 % interval.
fn share_with_interval(share: f64, interval: [f64; 2]) -> String {
    format!("{share:.1} % ({:.0}–{:.0})", interval[0], interval[1])
}

/// The three estimated shares with their intervals, or dashes.
fn estimated_cells(estimated: Option<&Estimated>) -> [String; 3] {
    match estimated {
        Some(e) => e
            .rows()
            .map(|(_, share, interval)| share_with_interval(share, interval)),
        None => ["–".to_owned(), "–".to_owned(), "–".to_owned()],
    }
}

/// Said beside a verdict the error could turn.
const WITHIN_ERROR: &str = " (close: within the model's error)";

/// The lesson's page; `chart` is its SVG.
pub fn lesson_page(lesson: &LessonReport, chart: &str) -> String {
    let line = LessonLine::of(lesson);
    let title = format!(
        "Class report: {}",
        lesson.lesson_id.as_deref().unwrap_or("lesson")
    );
    page(
        &title,
        html! {
            p { (lesson.start) " – " (lesson.end) " · " (line.desks) " desks, "
                (line.judged_desks) " with enough face evidence for a verdict" }
            p.verdict { "Class impression: " (verdict(lesson.class_impression))
                @if line.within_error { (WITHIN_ERROR) } }
            @let [positive, neutral, negative] = estimated_cells(lesson.class_estimated.as_ref());
            p { "Mean over the judged desks, estimated (each desk's shares corrected for its "
                "model's known confusions; 90 % intervals in brackets): positive " (positive)
                ", neutral " (neutral) ", negative " (negative)
                ". Good when positive + neutral > negative; each desk weighs the same." }
            (PreEscaped(chart))
            p { (super::chart::KEY) }
            h2 { "Desks" }
            (desk_table(&lesson.desks))
            p { "Data: " a href="class.csv" { "class.csv" } " (a row per desk), "
                a href="class.json" { "class.json" } " (the same, with the minutes)." }
        },
    )
}

fn desk_table(desks: &[DeskRow]) -> Markup {
    html! {
        table {
            tr { th { "desk" } th { "sessions" } th { "face seen (s)" } th { "frames with a face" }
                 th { "positive (est.)" } th { "neutral (est.)" } th { "negative (est.)" }
                 th { "impression" } }
            @for desk in desks {
                @let [positive, neutral, negative] = estimated_cells(desk.estimated.as_ref());
                tr {
                    td.name { (desk.desk_id) }
                    td { (desk.sessions) }
                    td { (desk.face_seconds) }
                    td { (desk.frames_with_face) " of " (desk.frames_analysed) }
                    td { (positive) }
                    td { (neutral) }
                    td { (negative) }
                    td { (verdict(desk.impression))
                        @if desk.impression != Impression::Insufficient
                            && desk.estimated.as_ref().is_some_and(|e| e.verdict_within_error) {
                            (WITHIN_ERROR)
                        } }
                }
            }
        }
    }
}

/// The index of every lesson, and of every session that could not be used.
pub fn index_page(lessons: &[LessonLine], rejected: &[Rejected]) -> String {
    page(
        "Class report",
        html! {
            p { (lessons.len()) " lessons. Data: " a href="class.csv" { "class.csv" }
                " (a row per desk per lesson), " a href="class.json" { "class.json" } "." }
            table {
                tr { th { "lesson" } th { "start" } th { "end" } th { "desks" } th { "judged" }
                     th { "positive" } th { "neutral" } th { "negative" } th { "class impression" } }
                @for lesson in lessons {
                    tr {
                        td.name { a href={ "lessons/" (lesson.key) "/index.html" } {
                            (lesson.lesson_id.as_deref().unwrap_or("lesson")) } }
                        td { (lesson.start) }
                        td { (lesson.end) }
                        td { (lesson.desks) }
                        td { (lesson.judged_desks) }
                        td { (percent(lesson.shares.map(|s| s.0))) }
                        td { (percent(lesson.shares.map(|s| s.1))) }
                        td { (percent(lesson.shares.map(|s| s.2))) }
                        td { (verdict(lesson.class_impression))
                            @if lesson.within_error { (WITHIN_ERROR) } }
                    }
                }
            }
            h2 { "Sessions not used (" (rejected.len()) ")" }
            @if rejected.is_empty() {
                p { "Every session found verified against its MANIFEST." }
            } @else {
                table {
                    tr { th { "session" } th { "why" } }
                    @for (path, reason) in rejected {
                        tr { td.name { (path.display().to_string()) } td.name { (reason) } }
                    }
                }
            }
        },
    )
}
