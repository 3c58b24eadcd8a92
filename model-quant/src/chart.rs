//! The training chart, like the paper's Figs. 5–6: accuracy (left) and loss (right) per
//! epoch for the training and validation sets, drawn with plotters into a PNG.

use std::path::Path;

use anyhow::{anyhow, Result};
use plotters::prelude::*;

use crate::run::EpochLog;

const FONT: &str = "sans-serif";

fn register_font() -> Result<()> {
    plotters::style::register_font(FONT, FontStyle::Normal, ekspresi_common::font::DEJAVU_SANS)
        .map_err(|_| anyhow!("the embedded font is not a TrueType font"))
}

/// Draws `log` into `path` (PNG, 1200×450).
pub fn training_chart(log: &[EpochLog], path: &Path) -> Result<()> {
    register_font()?;
    let root = BitMapBackend::new(path, (1200, 450)).into_drawing_area();
    root.fill(&WHITE)?;
    let (left, right) = root.split_horizontally(600);
    let epochs: Vec<f64> = log.iter().map(|e| e.epoch as f64).collect();
    let series = |f: fn(&EpochLog) -> f64| -> Vec<(f64, f64)> {
        epochs.iter().copied().zip(log.iter().map(f)).collect()
    };
    panel(
        &left,
        "Accuracy",
        &series(|e| e.train_accuracy),
        &series(|e| e.validation_accuracy),
    )?;
    panel(
        &right,
        "Loss",
        &series(|e| e.train_loss),
        &series(|e| e.validation_loss),
    )?;
    root.present()?;
    Ok(())
}

fn panel(
    area: &DrawingArea<BitMapBackend<'_>, plotters::coord::Shift>,
    title: &str,
    train: &[(f64, f64)],
    validation: &[(f64, f64)],
) -> Result<()> {
    let all = train.iter().chain(validation);
    let max_epoch = all.clone().map(|p| p.0).fold(1.0, f64::max);
    let max_value = all.clone().map(|p| p.1).fold(0.0, f64::max).max(1e-3) * 1.05;
    let min_value = all.map(|p| p.1).fold(max_value, f64::min).min(0.0);
    let mut chart = ChartBuilder::on(area)
        .caption(title, (FONT, 22))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(50)
        .build_cartesian_2d(0.0..max_epoch, min_value..max_value)?;
    chart
        .configure_mesh()
        .x_desc("epoch")
        .label_style((FONT, 14))
        .draw()?;
    chart
        .draw_series(LineSeries::new(train.iter().copied(), BLUE.stroke_width(2)))?
        .label("train")
        .legend(|(x, y)| PathElement::new([(x, y), (x + 20, y)], BLUE.stroke_width(2)));
    chart
        .draw_series(LineSeries::new(
            validation.iter().copied(),
            RED.stroke_width(2),
        ))?
        .label("validation")
        .legend(|(x, y)| PathElement::new([(x, y), (x + 20, y)], RED.stroke_width(2)));
    chart
        .configure_series_labels()
        .label_font((FONT, 14))
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()?;
    Ok(())
}

/// Draws a confusion matrix (`confusion[true][predicted]`, FER label order) into `path`
/// (PNG, 720×640): each cell shaded by its share of the true class (row), with its count.
/// (Drawn from the evaluation that produced the numbers, so a picture costs no extra look at
/// the test split.)
pub fn confusion_chart(confusion: &[Vec<usize>], title: &str, path: &Path) -> Result<()> {
    register_font()?;
    let names: Vec<&str> = ekspresi_common::Expression::ALL
        .iter()
        .map(|e| e.name())
        .collect();
    let classes = names.len();
    if confusion.len() != classes || confusion.iter().any(|row| row.len() != classes) {
        return Err(anyhow!("a confusion matrix must be {classes}×{classes}"));
    }
    let root = BitMapBackend::new(path, (720, 640)).into_drawing_area();
    root.fill(&WHITE)?;
    let side = classes as f64;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, (FONT, 20))
        .margin(16)
        .x_label_area_size(60)
        .y_label_area_size(80)
        .build_cartesian_2d(0.0..side, 0.0..side)?;
    // Ticks every half cell; only the centres (k + 0.5) carry a name.
    let name_at = |value: f64, flipped: bool| {
        let cell = value - 0.5;
        if (cell - cell.round()).abs() > 1e-6 || cell < 0.0 {
            return String::new();
        }
        let index = cell.round() as usize;
        let index = if flipped {
            classes.saturating_sub(1 + index)
        } else {
            index
        };
        names.get(index).copied().unwrap_or("").to_owned()
    };
    chart
        .configure_mesh()
        .disable_mesh()
        .x_labels(2 * classes + 1)
        .y_labels(2 * classes + 1)
        .x_label_formatter(&|v| name_at(*v, false))
        .y_label_formatter(&|v| name_at(*v, true))
        .x_desc("predicted")
        .y_desc("true")
        .label_style((FONT, 14))
        .draw()?;
    for (truth, row) in confusion.iter().enumerate() {
        let total = row.iter().sum::<usize>().max(1) as f64;
        // Row 0 (angry) at the top.
        let y = (classes - 1 - truth) as f64;
        for (predicted, &count) in row.iter().enumerate() {
            let x = predicted as f64;
            let share = count as f64 / total;
            let shade = RGBColor(
                (255.0 - 200.0 * share) as u8,
                (255.0 - 140.0 * share) as u8,
                255,
            );
            chart.draw_series(std::iter::once(Rectangle::new(
                [(x, y), (x + 1.0, y + 1.0)],
                shade.filled(),
            )))?;
            let colour = if share > 0.5 { WHITE } else { BLACK };
            chart.draw_series(std::iter::once(Text::new(
                format!("{count}"),
                (x + 0.38, y + 0.62),
                (FONT, 16).into_font().color(&colour),
            )))?;
        }
    }
    root.present()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_confusion_chart_is_a_png_and_a_wrong_shape_is_refused() {
        let dir = std::env::temp_dir().join(format!("ekspresi-confusion-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("confusion.png");
        let mut confusion = vec![vec![1usize; 7]; 7];
        confusion[3][3] = 90;
        confusion_chart(&confusion, "test", &path).unwrap();
        let image = image::open(&path).unwrap();
        assert_eq!((image.width(), image.height()), (720, 640));
        assert!(confusion_chart(&confusion[..6], "test", &path).is_err());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
