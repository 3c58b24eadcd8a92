//! Measures which face-crop margin makes detected faces look most like FER-2013's framing:
//! real FER-2013 faces are enlarged into larger frames, found by our Haar detector, cropped
//! with each margin, and classified by an int8 model (the shipped LeNet-5 unless given);
//! accuracy is compared with classifying the original 48×48 faces. Prints a table.
//!
//! The faces are the validation split the training runs hold out of `Training` (10 % per
//! class, seed 42): the kiosk's `face_margin` default is a choice, and choices are never
//! made on `PublicTest`.
//!
//! `cargo run --release -p ekspresi-tests --bin crop_margin [-- N_FACES [MODEL.onnx]]`

use ekspresi_common::model::ExpressionModel;
use ekspresi_common::preprocess::{crop, crop_box};
use ekspresi_tests::{fer2013, workspace};
use firmware::aggregate::top_expression;
use firmware::detect::{Cascade, DetectParams, Detector, GreyImage};
use image::{imageops, GrayImage, Luma};
use model_quant::data::{self, Usage};
use model_quant::export::prepared_input;
use model_quant::nets::Arch;
use model_quant::recipe::TrainConfig;

fn main() -> anyhow::Result<()> {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(700);
    let model_path = std::env::args()
        .nth(2)
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| workspace().join("firmware/models/lenet5-int8.onnx"));
    let training = data::load(&fer2013())?.with_usage(Usage::Training);
    // The split every training run here uses (the paper recipe's seed and default split).
    let (_, faces) = TrainConfig::paper(Arch::lenet5_wide()).split_faces(&training);
    let step = (faces.len() / n).max(1);
    let sample = faces.select(&(0..faces.len()).step_by(step).take(n).collect::<Vec<_>>());
    let model = ExpressionModel::load(&model_path, 1)?;
    let mut detector = Detector::new(Cascade::frontal_face()?, DetectParams::default())?;

    let direct = model.classify(&prepared_input(&sample))?;
    let direct_correct = direct
        .iter()
        .enumerate()
        .filter(|(i, p)| top_expression(p).label() == sample.label(*i))
        .count();

    let margins = [0.0f32, 0.05, 0.1, 0.15, 0.2, 0.3];
    let mut correct = [0usize; 6];
    let mut detected = 0usize;
    let mut direct_on_detected = 0usize;
    for (i, direct_probabilities) in direct.iter().enumerate() {
        let face = GrayImage::from_raw(48, 48, sample.face(i).to_vec()).expect("48×48");
        let big = imageops::resize(&face, 144, 144, imageops::FilterType::Triangle);
        let mut frame = GrayImage::from_pixel(320, 240, Luma([110]));
        imageops::overlay(&mut frame, &big, 88, 48);
        let grey = GreyImage::new(320, 240, frame.as_raw())?;
        let Some(best) = detector
            .detect_groups(grey)
            .into_iter()
            .max_by_key(|g| (g.neighbors, g.rect.area()))
        else {
            continue;
        };
        detected += 1;
        if top_expression(direct_probabilities).label() == sample.label(i) {
            direct_on_detected += 1;
        }
        for (slot, &margin) in correct.iter_mut().zip(&margins) {
            let area = crop_box(best.rect, margin, 320, 240);
            let pixels = crop(grey, area);
            let input = ekspresi_common::prepare_face(GreyImage::new(
                area.width as usize,
                area.height as usize,
                &pixels,
            )?);
            if top_expression(&model.classify(&input)?[0]).label() == sample.label(i) {
                *slot += 1;
            }
        }
    }
    println!(
        "{} validation faces, {} detected in their padded frame ({})",
        sample.len(),
        detected,
        model_path.display()
    );
    println!(
        "uncropped 48×48 faces: accuracy {:.3} (all), {:.3} (the detected ones)",
        direct_correct as f64 / sample.len() as f64,
        direct_on_detected as f64 / detected.max(1) as f64
    );
    println!("{:>8} {:>10}", "margin", "accuracy");
    for (margin, c) in margins.iter().zip(correct) {
        println!("{margin:>8.2} {:>10.3}", c as f64 / detected.max(1) as f64);
    }
    Ok(())
}
