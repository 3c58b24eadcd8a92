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
