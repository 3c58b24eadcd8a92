//! The class chart, as inline SVG (the page stays one self-contained file): the class's
//! estimated positive / neutral / negative share per minute in the upper panel, each with
//! its 90 % interval as a pale band — in the colours and line widths of each desk's
//! `timeline.png`, with a gap where no desk saw a face — and in
//! the lower panel how many desks saw a face each minute, so a share resting on one desk is
//! visibly thin. The key is the page's text ([`KEY`]), not drawn in the chart, so a series
//! colour on the page is always data.

use plotters::prelude::*;

use super::lessons::ClassMinute;
use crate::record::chart::{draw_bands, draw_lines, BandPoint, BAR, LINES};

/// Chart size in CSS pixels.
pub const SIZE: (u32, u32) = (900, 460);

/// The chart's key, in words.
pub const KEY: &str = "Lines: estimated positive (green, thickest), neutral (blue), negative \
(red, thinnest), each desk's shares corrected for its model's known confusions; pale bands: \
90 % intervals; a gap is a minute in which no desk saw a face. Bars: how many desks saw a face.";

/// A minute's share of one category and its interval.
type Share = fn(&ClassMinute) -> Option<(f64, [f64; 2])>;

const SHARES: [Share; 3] = [
    |m| Some((m.positive_percent?, m.interval_90?.positive)),
    |m| Some((m.neutral_percent?, m.interval_90?.neutral)),
    |m| Some((m.negative_percent?, m.interval_90?.negative)),
];

/// The chart of `minutes` as an `<svg>` element.
pub fn class_chart(minutes: &[ClassMinute], desks: usize) -> Result<String, String> {
    // Text is measured with the embedded font (plotters' ab_glyph backend), as for the PNGs.
    plotters::style::register_font(
        "sans-serif",
        FontStyle::Normal,
        ekspresi_common::font::DEJAVU_SANS,
    )
    .map_err(|_| "embedded font is invalid".to_owned())?;
    let mut svg = String::new();
    draw(&mut svg, minutes, desks).map_err(|e| e.to_string())?;
    Ok(svg)
}

fn draw(
    svg: &mut String,
    minutes: &[ClassMinute],
    desks: usize,
) -> Result<(), Box<dyn std::error::Error>> {
    let root = SVGBackend::with_string(svg, SIZE).into_drawing_area();
    root.fill(&WHITE)?;
    let (upper, lower) = root.split_vertically(310);
    let end = minutes.len().max(1) as f64;
    let mut chart = ChartBuilder::on(&upper)
        .caption(
            "The class's estimated reactions (% each minute, mean over the desks that saw a face)",
            ("sans-serif", 15),
        )
        .margin(10)
        .x_label_area_size(20)
        .y_label_area_size(45)
        .build_cartesian_2d(0.0..end, 0.0..100.0)?;
    let whole_minutes = |x: &f64| format!("{x:.0}");
    let x_labels = (minutes.len() + 1).min(13);
    chart
        .configure_mesh()
        .x_labels(x_labels)
        .x_label_formatter(&whole_minutes)
        .y_desc("%")
        .label_style(("sans-serif", 12))
        .draw()?;
    let runs: Vec<Vec<Vec<BandPoint>>> = SHARES.iter().map(|&share| runs(minutes, share)).collect();
    for (line, runs) in LINES.iter().zip(&runs) {
        draw_bands(&mut chart, line, runs)?;
    }
    for (line, runs) in LINES.iter().zip(&runs) {
        // Twice the desk chart's scale: a wider chart of fewer points.
        draw_lines(&mut chart, line, runs, 2)?;
    }

    let most = desks.max(1) as f64;
    let mut bars = ChartBuilder::on(&lower)
        .margin(10)
        .x_label_area_size(35)
        .y_label_area_size(45)
        .build_cartesian_2d(0.0..end, 0.0..most)?;
    bars.configure_mesh()
        .x_labels(x_labels)
        .x_label_formatter(&whole_minutes)
        .y_label_formatter(&whole_minutes)
        .x_desc("minute of the lesson")
        .y_desc("desks with a face")
        .y_labels(3)
        .label_style(("sans-serif", 12))
        .draw()?;
    bars.draw_series(minutes.iter().filter(|m| m.desks_with_face > 0).map(|m| {
        let x = m.minute as f64;
        Rectangle::new(
            [(x + 0.1, 0.0), (x + 0.9, m.desks_with_face as f64)],
            BAR.filled(),
        )
    }))?;
    root.present()?;
    Ok(())
}

/// Runs of consecutive minutes with a share; a minute without one ends a run.
fn runs(minutes: &[ClassMinute], share: Share) -> Vec<Vec<BandPoint>> {
    let mut runs = Vec::new();
    let mut current = Vec::new();
    for minute in minutes {
        match share(minute) {
            Some((value, [low, high])) => {
                current.push((minute.minute as f64 + 0.5, value, low, high))
            }
            None if !current.is_empty() => runs.push(std::mem::take(&mut current)),
            None => {}
        }
    }
    if !current.is_empty() {
        runs.push(current);
    }
    runs
}
