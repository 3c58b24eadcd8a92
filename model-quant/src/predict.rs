//! Running a trained network: the batch input (the one shared preprocessing, augmented when
//! training), class probabilities for a set of faces, accuracy and mean loss.

use burn::module::Module;
use burn::tensor::{Device, Tensor, TensorData};
use ekspresi_common::contract::NUM_CLASSES;
use ekspresi_common::{prepare_face_into, GreyImage, FACE_SIDE};
use image::GrayImage;
use rand::SeedableRng;

use crate::augment::{self, AugmentConfig, Transform};
use crate::data::{Faces, FACE_LEN};
use crate::nets::Net;

/// The batch's faces as model input, augmented when `augment` is set; a cropping net's
/// training also moves each augmented face by up to `window_margin` pixels
/// ([`augment::random_window`]: the net reads random windows of the face).
pub(crate) fn batch_input(
    faces: &Faces,
    batch: &[usize],
    augment: Option<&AugmentConfig>,
    window_margin: usize,
    rng: &mut impl rand::Rng,
    scratch: &mut GrayImage,
) -> Vec<f32> {
    let mut input = vec![0.0f32; batch.len() * FACE_LEN];
    for (slot, &index) in input.chunks_exact_mut(FACE_LEN).zip(batch) {
        let face = match augment {
            Some(config) => {
                augment::apply(faces.face(index), &Transform::random(config, rng), scratch);
                augment::erase(scratch, config.erase_probability, rng);
                scratch.as_raw().as_slice()
            }
            None => faces.face(index),
        };
        let grey = GreyImage::new(FACE_SIDE, FACE_SIDE, face).expect("faces are 48×48");
        prepare_face_into(grey, slot);
        if augment.is_some() {
            augment::random_window(slot, window_margin, rng);
        }
    }
    input
}

/// (mean cross-entropy, accuracy) of `model` on `faces`, without augmentation.
pub fn evaluate(model: &Net, faces: &Faces) -> (f64, f64) {
    let probabilities = predict(model, faces);
    let loss: f64 = probabilities
        .chunks_exact(NUM_CLASSES)
        .enumerate()
        .map(|(i, row)| -f64::from(row[faces.label(i)].max(1e-7)).ln())
        .sum();
    (
        loss / faces.len().max(1) as f64,
        accuracy(&probabilities, faces),
    )
}

/// Share of `faces` whose most probable class (rows of `probabilities`, `len×7`) is their label.
pub fn accuracy(probabilities: &[f32], faces: &Faces) -> f64 {
    let hits = probabilities
        .chunks_exact(NUM_CLASSES)
        .enumerate()
        .filter(|(i, row)| crate::metrics::argmax(row) == faces.label(*i))
        .count();
    hits as f64 / faces.len().max(1) as f64
}

/// Softmax probabilities `len×7` of the burn model (inference mode) on `faces`.
pub fn predict(model: &Net, faces: &Faces) -> Vec<f32> {
    let model = model.valid();
    // Inputs go where the weights are (a libtorch-trained net validates on libtorch).
    let device = model
        .devices()
        .into_iter()
        .next()
        .unwrap_or_else(Device::flex);
    let all: Vec<usize> = (0..faces.len()).collect();
    let mut scratch = GrayImage::new(FACE_SIDE as u32, FACE_SIDE as u32);
    let mut rng = rand::rngs::StdRng::seed_from_u64(0);
    let mut out = Vec::with_capacity(faces.len() * 7);
    for batch in all.chunks(256) {
        let input = batch_input(faces, batch, None, 0, &mut rng, &mut scratch);
        let images = Tensor::<4>::from_data(
            TensorData::new(input, [batch.len(), 1, FACE_SIDE, FACE_SIDE]),
            &device,
        );
        let probabilities = burn::tensor::activation::softmax(model.forward(images), 1);
        out.extend(
            probabilities
                .into_data()
                .convert::<f32>()
                .try_to_vec::<f32>()
                .unwrap_or_default(),
        );
    }
    out
}

/// Element-wise mean of two probability tables of the same faces (a face and its mirror image:
/// test-time mirror averaging).
pub fn average(plain: &[f32], mirrored: &[f32]) -> Vec<f32> {
    plain
        .iter()
        .zip(mirrored)
        .map(|(a, b)| 0.5 * (a + b))
        .collect()
}
