//! Writing a lesson's files that describe it: `summary.json`, `summary.txt`, `timeline.csv`
//! and `timeline.png`, each atomically, from the lesson's counts so far.

use anyhow::{Context, Result};

use crate::record::session::{self, SessionDir};
use crate::record::summary::{timeline_chart, write_atomically, Summary, SummaryInput, Timeline};

/// Builds the summary from `input` and writes all four files into `session`.
pub(crate) fn write_summaries(
    session: &SessionDir,
    input: &SummaryInput<'_>,
    timeline: &Timeline,
) -> Result<Summary> {
    let summary = Summary::build(input);
    let write = |name: &str, bytes: &[u8]| {
        write_atomically(&session.file(name), bytes).with_context(|| format!("cannot write {name}"))
    };
    write(
        session::SUMMARY_JSON,
        serde_json::to_string_pretty(&summary)?.as_bytes(),
    )?;
    write(session::SUMMARY_TXT, summary.to_text().as_bytes())?;
    write(session::TIMELINE_CSV, timeline.to_csv().as_bytes())?;
    let correction = summary
        .calibration
        .as_ref()
        .and_then(|c| ekspresi_common::estimate::Correction::new(c).ok());
    if let Err(error) = timeline_chart(
        timeline,
        correction.as_ref(),
        &session.file(session::TIMELINE_PNG),
    ) {
        tracing::warn!(%error, "could not draw timeline.png");
    }
    Ok(summary)
}
