//! `timeline.png`: the lesson's reactions second by second, drawn for a person to read.
//!
//! - The upper panel shows the positive / neutral / negative share of each second's face
//!   frames. A second without a face is a **gap** — no line runs through it — rather than
//!   0 % on every line, which would read as "nobody was negative".
//! - The lower panel shows how many face frames each second had, so a 100 % resting on one
//!   stray frame is visibly thin.
//! - Lines carry a marker at every second and different widths, so lines that overlap
//!   (all three at 33 %, or two at 0 %) stay visible.

use std::path::Path;

use plotters::coord::Shift;
use plotters::prelude::*;

use super::summary::{SecondCounts, Timeline};

/// What one line of the upper panel shows (the class report draws its lines alike).
pub(crate) struct Line {
    pub(crate) label: &'static str,
    pub(crate) colour: RGBColor,
    pub(crate) width: u32,
    count: fn(&SecondCounts) -> u64,
}

pub(crate) const LINES: [Line; 3] = [
    Line {
        label: "positive",
        colour: RGBColor(20, 160, 40),
        width: 4,
        count: |s| s.positive,
    },
    Line {
        label: "neutral",
        colour: RGBColor(40, 90, 220),
        width: 3,
        count: |s| s.neutral,
    },
    Line {
        label: "negative",
        colour: RGBColor(220, 40, 30),
        width: 2,
        count: |s| s.negative,
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

/// Draws `timeline` to `path`: drawn in memory, encoded as PNG and written atomically
/// (0640, fsynced) like every other file of a session.
pub fn timeline_chart(timeline: &Timeline, path: &Path) -> Result<(), Box<dyn std::error::Error>> {
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
        draw_shares(&upper, timeline.seconds())?;
        draw_face_frames(&lower, timeline.seconds())?;
        root.present()?;
    }
    let image = image::RgbImage::from_raw(width, height, pixels).ok_or("chart buffer size")?;
    let mut png = std::io::Cursor::new(Vec::new());
    image.write_to(&mut png, image::ImageFormat::Png)?;
    ekspresi_common::fsutil::write_atomically(path, png.get_ref())?;
    Ok(())
}

fn draw_shares(
    area: &DrawingArea<BitMapBackend<'_>, Shift>,
    seconds: &[SecondCounts],
) -> Result<(), Box<dyn std::error::Error>> {
    let end = seconds.len().max(1) as f64;
    let mut chart = ChartBuilder::on(area)
        .caption(
            "Reactions over the lesson (% of each second's face frames; gaps: no face)",
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
    for line in &LINES {
        let style = line.colour.stroke_width(line.width);
        let runs = runs_with_faces(seconds, line.count);
        // An empty series carries the legend entry even when no second has a face.
        let colour = line.colour;
        chart
            .draw_series(LineSeries::new(Vec::new(), style))?
            .label(line.label)
            .legend(move |(x, y)| PathElement::new([(x, y), (x + 18, y)], colour.stroke_width(3)));
        for run in runs {
            chart.draw_series(LineSeries::new(run.iter().copied(), style))?;
            let radius = line.point_radius(1);
            chart.draw_series(run.iter().map(|&p| Circle::new(p, radius, colour.filled())))?;
        }
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
    seconds: &[SecondCounts],
) -> Result<(), Box<dyn std::error::Error>> {
    let end = seconds.len().max(1) as f64;
    let most = seconds.iter().map(faces).max().unwrap_or(0).max(1) as f64;
    let mut chart = ChartBuilder::on(area)
        .margin(10)
        .x_label_area_size(35)
        .y_label_area_size(45)
        .build_cartesian_2d(0.0..end, 0.0..most)?;
    chart
        .configure_mesh()
        .x_desc("second of the lesson")
        .y_desc("face frames")
        .y_labels(3)
        .label_style(("sans-serif", 12))
        .draw()?;
    chart.draw_series(seconds.iter().filter(|s| faces(s) > 0).map(|s| {
        let x = s.second as f64;
        Rectangle::new([(x + 0.1, 0.0), (x + 0.9, faces(s) as f64)], BAR.filled())
    }))?;
    Ok(())
}

/// The share of `count` in each second, as runs of consecutive seconds with a face (a
/// second without one ends a run); points sit in the middle of their second.
fn runs_with_faces(
    seconds: &[SecondCounts],
    count: fn(&SecondCounts) -> u64,
) -> Vec<Vec<(f64, f64)>> {
    let mut runs: Vec<Vec<(f64, f64)>> = Vec::new();
    let mut current = Vec::new();
    for second in seconds {
        let total = faces(second);
        if total == 0 {
            if !current.is_empty() {
                runs.push(std::mem::take(&mut current));
            }
            continue;
        }
        let share = 100.0 * count(second) as f64 / total as f64;
        current.push((second.second as f64 + 0.5, share));
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

    #[test]
    fn seconds_without_a_face_break_the_lines() {
        let mut timeline = Timeline::default();
        for second in 0..30 {
            let category = match second {
                10..20 => None,
                _ if second % 2 == 0 => Some(Category::Positive),
                _ => Some(Category::Negative),
            };
            timeline.record(second, category);
        }
        let runs = runs_with_faces(timeline.seconds(), |s| s.positive);
        assert_eq!(runs.len(), 2, "one run before the gap, one after");
        assert_eq!((runs[0].len(), runs[1].len()), (10, 10));
        assert_eq!(runs[0][0], (0.5, 100.0));
        assert_eq!(runs[0][1], (1.5, 0.0));
    }

    #[test]
    fn the_drawn_chart_has_a_gap_where_no_face_was_seen() {
        let mut timeline = Timeline::default();
        for second in 0..30 {
            let category = (!(10..20).contains(&second)).then_some(Category::Positive);
            timeline.record(second, category);
        }
        let path = std::env::temp_dir().join(format!("ekspresi-chart-{}.png", std::process::id()));
        timeline_chart(&timeline, &path).unwrap();
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
        // Plot area: about x 55..890 for seconds 0..30 (27.8 px a second).
        let at = |second: f64| (55.0 + second * 27.8) as u32;
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
