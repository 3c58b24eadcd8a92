//! `timeline.png`: the lesson's estimated reactions over time, drawn for a person to read.
//!
//! - The upper panel shows, per minute (per 10 s in a lesson of 10 minutes or less, so a
//!   short replay still has a shape), the estimated positive / neutral / negative shares —
//!   the lesson estimator on that minute's seconds, corrected for the model's confusions —
//!   each with its 90 % interval as a pale band. A minute without a face is a **gap** — no
//!   line runs through it — rather than 0 % on every line, which would read as "nobody was
//!   negative". Per-second lines of a 45-minute lesson are a tangle; the per-second detail
//!   stays in `timeline.csv`.
//! - The lower panel shows how many face frames each minute had, so a share resting on a
//!   few stray frames is visibly thin.
//! - Lines carry a marker at every point and different widths, so lines that overlap
//!   (all three at 33 %, or two at 0 %) stay visible.

use std::path::Path;

use ekspresi_common::estimate::{estimate, Correction, Estimate, SecondBlocks};
use plotters::coord::types::RangedCoordf64;
use plotters::coord::Shift;
use plotters::prelude::*;

use super::summary::{SecondCounts, Timeline};
use crate::aggregate::add_second;

/// What one line of the upper panel shows (the class report draws its lines alike).
pub(crate) struct Line {
    pub(crate) label: &'static str,
    pub(crate) colour: RGBColor,
    pub(crate) width: u32,
}

pub(crate) const LINES: [Line; 3] = [
    Line {
        label: "positive",
        colour: RGBColor(20, 160, 40),
        width: 4,
    },
    Line {
        label: "neutral",
        colour: RGBColor(40, 90, 220),
        width: 3,
    },
    Line {
        label: "negative",
        colour: RGBColor(220, 40, 30),
        width: 2,
    },
];

impl Line {
    /// Radius of the line's points, sized by its width at `scale` pixels per width unit. The
    /// lines are drawn widest first, so where two series coincide (one second at 50 %
    /// positive and 50 % neutral) the point beneath still shows as a ring around the one on top.
    pub(crate) fn point_radius(&self, scale: u32) -> u32 {
        scale * self.width + 1
    }
}

pub(crate) const BAR: RGBColor = RGBColor(120, 120, 120);

fn faces(second: &SecondCounts) -> u64 {
    second.positive + second.neutral + second.negative
}

/// Chart size in pixels.
const CHART_SIZE: (u32, u32) = (900, 480);

/// Draws `timeline`, estimated with the model's `correction`, to `path`: drawn in memory,
/// encoded as PNG and written atomically (0640, fsynced) like every other file of a session.
pub fn timeline_chart(
    timeline: &Timeline,
    correction: Option<&Correction>,
    path: &Path,
) -> Result<(), Box<dyn std::error::Error>> {
    plotters::style::register_font(
        "sans-serif",
        FontStyle::Normal,
        ekspresi_common::font::DEJAVU_SANS,
    )
    .map_err(|_| "embedded font is invalid")?;
    let (width, height) = CHART_SIZE;
    let mut pixels = vec![0u8; width as usize * height as usize * 3];
    {
        let root = BitMapBackend::with_buffer(&mut pixels, CHART_SIZE).into_drawing_area();
        root.fill(&WHITE)?;
        let (upper, lower) = root.split_vertically(330);
        let bins = bins(timeline.seconds(), correction);
        let (_, x_name) = axis(timeline.seconds().len());
        draw_shares(&upper, &bins)?;
        draw_face_frames(&lower, &bins, x_name)?;
        root.present()?;
    }
    let image = image::RgbImage::from_raw(width, height, pixels).ok_or("chart buffer size")?;
    let mut png = std::io::Cursor::new(Vec::new());
    image.write_to(&mut png, image::ImageFormat::Png)?;
    ekspresi_common::fsutil::write_atomically(path, png.get_ref())?;
    Ok(())
}

/// One bin of the chart: its start and end (in the axis' unit, [`axis`]), face frames,
/// estimate.
struct Bin {
    from: f64,
    to: f64,
    faces: u64,
    estimate: Option<Estimate>,
}

/// Seconds a bin spans for a lesson of `seconds`: a minute, or 10 s up to 10 minutes.
fn bin_seconds(seconds: usize) -> usize {
    if seconds > 600 {
        60
    } else {
        10
    }
}

/// The x axis for a lesson of `seconds`: seconds per unit, and its name — minutes once bins
/// are minutes, seconds while they are 10 s.
fn axis(seconds: usize) -> (f64, &'static str) {
    if bin_seconds(seconds) == 60 {
        (60.0, "minute of the lesson")
    } else {
        (1.0, "second of the lesson")
    }
}

fn bins(seconds: &[SecondCounts], correction: Option<&Correction>) -> Vec<Bin> {
    let width = bin_seconds(seconds.len());
    let (unit, _) = axis(seconds.len());
    seconds
        .chunks(width)
        .enumerate()
        .map(|(i, chunk)| {
            let mut blocks = SecondBlocks::default();
            for second in chunk {
                add_second(&mut blocks, second.categories(), second.probabilities);
            }
            let start = (i * width) as f64;
            Bin {
                from: start / unit,
                to: (start + chunk.len() as f64) / unit,
                faces: chunk.iter().map(faces).sum(),
                estimate: estimate(&blocks, correction),
            }
        })
        .collect()
}

/// One point of a line with its 90 % interval: (x, share, low, high), shares in percent.
pub(crate) type BandPoint = (f64, f64, f64, f64);

type Chart<'a, 'b, DB> = ChartContext<'a, DB, Cartesian2d<RangedCoordf64, RangedCoordf64>>;

/// Each run's 90 % interval as a pale band (a bar where a run is one point). Drawn for every
/// line before any line, so no band covers a line.
pub(crate) fn draw_bands<DB: DrawingBackend>(
    chart: &mut Chart<'_, '_, DB>,
    line: &Line,
    runs: &[Vec<BandPoint>],
) -> Result<(), Box<dyn std::error::Error>>
where
    DB::ErrorType: 'static,
{
    let pale = line.colour.mix(0.18).filled();
    for run in runs {
        if let [(x, _, low, high)] = run.as_slice() {
            chart.draw_series(std::iter::once(PathElement::new(
                [(*x, *low), (*x, *high)],
                line.colour.mix(0.35).stroke_width(6),
            )))?;
            continue;
        }
        let upper = run.iter().map(|&(x, _, _, high)| (x, high));
        let lower = run.iter().rev().map(|&(x, _, low, _)| (x, low));
        chart.draw_series(std::iter::once(Polygon::new(
            upper.chain(lower).collect::<Vec<_>>(),
            pale,
        )))?;
    }
    Ok(())
}

/// Each run as a line with a marker at every point, `scale` pixels per width unit.
pub(crate) fn draw_lines<DB: DrawingBackend>(
    chart: &mut Chart<'_, '_, DB>,
    line: &Line,
    runs: &[Vec<BandPoint>],
    scale: u32,
) -> Result<(), Box<dyn std::error::Error>>
where
    DB::ErrorType: 'static,
{
    let colour = line.colour;
    let style = colour.stroke_width(line.width);
    for run in runs {
        let points: Vec<(f64, f64)> = run.iter().map(|&(x, share, _, _)| (x, share)).collect();
        chart.draw_series(LineSeries::new(points.iter().copied(), style))?;
        let radius = line.point_radius(scale);
        chart.draw_series(
            points
                .iter()
                .map(|&p| Circle::new(p, radius, colour.filled())),
        )?;
    }
    Ok(())
}

fn draw_shares(
    area: &DrawingArea<BitMapBackend<'_>, Shift>,
    bins: &[Bin],
) -> Result<(), Box<dyn std::error::Error>> {
    let end = bins.last().map_or(1.0, |b| b.to);
    let mut chart = ChartBuilder::on(area)
        .caption(
            "Estimated reactions over the lesson (%, bands: 90 % intervals; gaps: no face)",
            ("sans-serif", 17),
        )
        .margin(10)
        .x_label_area_size(20)
        .y_label_area_size(45)
        .build_cartesian_2d(0.0..end, 0.0..100.0)?;
    chart
        .configure_mesh()
        .y_desc("%")
        .label_style(("sans-serif", 12))
        .draw()?;
    let runs: Vec<Vec<Vec<BandPoint>>> =
        (0..LINES.len()).map(|k| runs_with_faces(bins, k)).collect();
    for (line, runs) in LINES.iter().zip(&runs) {
        draw_bands(&mut chart, line, runs)?;
    }
    for (line, runs) in LINES.iter().zip(&runs) {
        // An empty series carries the legend entry even when no bin has a face.
        let colour = line.colour;
        chart
            .draw_series(LineSeries::new(Vec::new(), colour.stroke_width(line.width)))?
            .label(line.label)
            .legend(move |(x, y)| PathElement::new([(x, y), (x + 18, y)], colour.stroke_width(3)));
        draw_lines(&mut chart, line, runs, 1)?;
    }
    chart
        .configure_series_labels()
        .label_font(("sans-serif", 12))
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()?;
    Ok(())
}

fn draw_face_frames(
    area: &DrawingArea<BitMapBackend<'_>, Shift>,
    bins: &[Bin],
    x_name: &str,
) -> Result<(), Box<dyn std::error::Error>> {
    let end = bins.last().map_or(1.0, |b| b.to);
    let most = bins.iter().map(|b| b.faces).max().unwrap_or(0).max(1) as f64;
    let mut chart = ChartBuilder::on(area)
        .margin(10)
        .x_label_area_size(35)
        .y_label_area_size(45)
        .build_cartesian_2d(0.0..end, 0.0..most)?;
    chart
        .configure_mesh()
        .x_desc(x_name)
        .y_desc("face frames")
        .y_labels(3)
        .label_style(("sans-serif", 12))
        .draw()?;
    chart.draw_series(bins.iter().filter(|b| b.faces > 0).map(|b| {
        let inset = (b.to - b.from) * 0.1;
        Rectangle::new(
            [(b.from + inset, 0.0), (b.to - inset, b.faces as f64)],
            BAR.filled(),
        )
    }))?;
    Ok(())
}

/// Category `k`'s estimated share in each bin, as runs of consecutive bins with a face (a
/// bin without one ends a run); points sit in the middle of their bin.
fn runs_with_faces(bins: &[Bin], k: usize) -> Vec<Vec<BandPoint>> {
    let mut runs: Vec<Vec<BandPoint>> = Vec::new();
    let mut current = Vec::new();
    for bin in bins {
        let Some(estimate) = &bin.estimate else {
            if !current.is_empty() {
                runs.push(std::mem::take(&mut current));
            }
            continue;
        };
        let [low, high] = estimate.interval_90(k);
        current.push((
            (bin.from + bin.to) / 2.0,
            100.0 * estimate.shares[k],
            100.0 * low,
            100.0 * high,
        ));
    }
    if !current.is_empty() {
        runs.push(current);
    }
    runs
}

#[cfg(test)]
mod tests {
    use super::*;
    use ekspresi_common::Category;

    /// A 30-minute lesson, one frame a second: positive and negative alternating, no face in
    /// minutes 10 to 19.
    fn lesson_with_a_gap(face: impl Fn(u64) -> Option<Category>) -> Timeline {
        let mut timeline = Timeline::default();
        for second in 0..1800 {
            let category = (!(600..1200).contains(&second))
                .then(|| face(second))
                .flatten();
            timeline.record(second, category);
        }
        timeline
    }

    #[test]
    fn minutes_without_a_face_break_the_lines() {
        let timeline = lesson_with_a_gap(|s| {
            Some(if s % 2 == 0 {
                Category::Positive
            } else {
                Category::Negative
            })
        });
        let minutes = bins(timeline.seconds(), None);
        assert_eq!(minutes.len(), 30, "a bin a minute past 10 minutes");
        let runs = runs_with_faces(&minutes, 0);
        assert_eq!(runs.len(), 2, "one run before the gap, one after");
        assert_eq!((runs[0].len(), runs[1].len()), (10, 10));
        let (x, share, low, high) = runs[0][0];
        assert_eq!((x, share), (0.5, 50.0));
        assert!(low < 50.0 && high > 50.0, "{low}..{high}");
        // A short lesson gets 10-second bins.
        let mut short = Timeline::default();
        for second in 0..48 {
            short.record(second, Some(Category::Neutral));
        }
        assert_eq!(bins(short.seconds(), None).len(), 5);
    }

    #[test]
    fn the_drawn_chart_has_a_gap_where_no_face_was_seen() {
        let timeline = lesson_with_a_gap(|_| Some(Category::Positive));
        let path = std::env::temp_dir().join(format!("ekspresi-chart-{}.png", std::process::id()));
        timeline_chart(&timeline, None, &path).unwrap();
        let image = image::open(&path).unwrap().into_rgb8();
        let _ = std::fs::remove_file(&path);
        let positive = LINES[0].colour;
        let green_in = |x0: u32, x1: u32| {
            (x0..x1)
                .flat_map(|x| (25..320).map(move |y| (x, y)))
                .filter(|&(x, y)| {
                    let p = image.get_pixel(x, y);
                    (0..3).all(|c| p[c].abs_diff([positive.0, positive.1, positive.2][c]) < 30)
                })
                .count()
        };
        // Plot area: about x 55..890 for minutes 0..30 (27.8 px a minute).
        let at = |minute: f64| (55.0 + minute * 27.8) as u32;
        assert!(
            green_in(at(2.0), at(8.0)) > 50,
            "the line before the gap is drawn"
        );
        assert_eq!(
            green_in(at(11.5), at(18.5)),
            0,
            "nothing drawn through the gap"
        );
        assert!(
            green_in(at(22.0), at(28.0)) > 50,
            "the line after the gap is drawn"
        );
        // The lower panel has bars where faces were seen, none in the gap.
        let grey_in = |x0: u32, x1: u32| {
            (x0..x1)
                .flat_map(|x| (345..440).map(move |y| (x, y)))
                .filter(|&(x, y)| image.get_pixel(x, y).0 == [BAR.0, BAR.1, BAR.2])
                .count()
        };
        assert!(grey_in(at(2.0), at(8.0)) > 100);
        assert_eq!(grey_in(at(11.5), at(18.5)), 0);
    }
}
