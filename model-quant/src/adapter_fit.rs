//! Fits the [`InputAdapter`] label-free: which Gaussian blur (and contrast) makes sharp
//! reference faces look like the blurred `Training` rows, judged by their mean 2-D power
//! spectra.
//!
//! The spectrum is the right yardstick because the degradation is (to within a few per cent
//! at every frequency, measured) a linear blur: it multiplies each frequency's amplitude by a
//! fixed factor, whatever the face. Averaged over thousands of faces, the ratio of the two
//! sets' spectra is that factor, so no face has to be paired with its sharp original and no
//! label is read. A single statistic (mean gradient, say) cannot tell a wide blur with
//! contrast loss from a narrower blur without it; the full spectrum can.

use rustfft::num_complex::Complex;
use rustfft::FftPlanner;
use serde::Serialize;

use crate::data::{Faces, FACE_LEN};
use crate::plain::InputAdapter;
use ekspresi_common::{prepare_face, GreyImage, FACE_SIDE};

/// How well one candidate adapter matches.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Candidate {
    pub blur_sigma: f32,
    /// Best contrast for this σ.
    pub contrast: f32,
    /// Standard deviation (grey levels) of the white noise that best explains the training
    /// rows' high-frequency floor on top of the blur (not part of the adapter).
    pub noise_grey_levels: f32,
    /// Mean |ln| amplitude ratio between the adapted reference and the training spectrum,
    /// over every frequency but DC (0 = identical spectra).
    pub log_amplitude_error: f64,
}

/// Mean power spectrum (48×48, row-major, DC at 0) of faces given as 0..1 images, each
/// with its own mean removed so brightness does not swamp the DC neighbourhood.
pub fn mean_power_spectrum<'a>(images: impl Iterator<Item = Vec<f32>> + 'a) -> Vec<f64> {
    let side = FACE_SIDE;
    let fft = FftPlanner::<f32>::new().plan_fft_forward(side);
    let mut power = vec![0.0f64; side * side];
    let mut count = 0usize;
    let mut buffer = vec![Complex::new(0.0f32, 0.0); side * side];
    let mut column = vec![Complex::new(0.0f32, 0.0); side];
    for image in images {
        let mean = image.iter().sum::<f32>() / image.len() as f32;
        for (b, &v) in buffer.iter_mut().zip(&image) {
            *b = Complex::new(v - mean, 0.0);
        }
        for row in buffer.chunks_exact_mut(side) {
            fft.process(row);
        }
        for x in 0..side {
            for y in 0..side {
                column[y] = buffer[y * side + x];
            }
            fft.process(&mut column);
            for y in 0..side {
                power[y * side + x] += f64::from(column[y].norm_sqr());
            }
        }
        count += 1;
    }
    power.iter_mut().for_each(|p| *p /= count.max(1) as f64);
    power
}

/// A face as the model sees it (the shared preprocessing: 48×48, 0..1).
pub fn unit_image(faces: &Faces, index: usize) -> Vec<f32> {
    let face = GreyImage::new(FACE_SIDE, FACE_SIDE, faces.face(index)).expect("faces are 48×48");
    prepare_face(face)
}

/// The mean power spectrum of `faces` (see [`mean_power_spectrum`]).
pub fn faces_spectrum(faces: &Faces) -> Vec<f64> {
    mean_power_spectrum((0..faces.len()).map(|i| unit_image(faces, i)))
}

/// Scores each σ in `sigmas`: blurs every reference face as the exported adapter would,
/// and compares the mean spectrum with `target` (e.g. the `Training` rows'). The contrast for
/// a σ is the one that minimises the error (the median log amplitude ratio: contrast scales
/// every frequency alike).
pub fn fit(target: &[f64], reference: &Faces, sigmas: &[f32]) -> Vec<Candidate> {
    sigmas
        .iter()
        .map(|&blur_sigma| {
            let adapter = InputAdapter {
                blur_sigma,
                contrast: 1.0,
                mean_grey: 0.5,
            };
            let adapted = mean_power_spectrum(
                (0..reference.len()).map(|i| adapter.apply(&unit_image(reference, i), FACE_SIDE)),
            );
            score(blur_sigma, &adapted, target)
        })
        .collect()
}

/// Fits `target ≈ contrast² · adapted + noise` (relative least squares, both terms ≥ 0) and
/// scores what is left. The white-noise floor is there because the training rows were
/// decoded from JPEGs: rounding and compression noise fill the high frequencies the blur
/// removed, and a pure blur would have to mis-fit σ or contrast to explain them.
fn score(blur_sigma: f32, adapted: &[f64], target: &[f64]) -> Candidate {
    // DC (index 0) is mean-removed; every other frequency counts once.
    let pairs: Vec<(f64, f64)> = adapted
        .iter()
        .zip(target)
        .skip(1)
        .map(|(&a, &t)| (a.max(1e-12), t.max(1e-12)))
        .collect();
    let (mut saa, mut sab, mut sbb, mut sa, mut sb) = (0.0, 0.0, 0.0, 0.0, 0.0);
    for &(a, t) in &pairs {
        let (a, b) = (a / t, 1.0 / t);
        saa += a * a;
        sab += a * b;
        sbb += b * b;
        sa += a;
        sb += b;
    }
    let det = saa * sbb - sab * sab;
    let (mut gain, mut noise) = ((sa * sbb - sb * sab) / det, (saa * sb - sab * sa) / det);
    if !(noise >= 0.0 && gain >= 0.0) {
        noise = 0.0;
        gain = sa / saa;
    }
    let error = pairs
        .iter()
        .map(|&(a, t)| (0.5 * ((gain * a + noise).max(1e-12) / t).ln()).abs())
        .sum::<f64>()
        / pairs.len() as f64;
    Candidate {
        blur_sigma,
        contrast: gain.sqrt() as f32,
        noise_grey_levels: (noise / FACE_LEN as f64).sqrt() as f32 * 255.0,
        log_amplitude_error: error,
    }
}

/// The candidate with the smallest error.
pub fn best(candidates: &[Candidate]) -> Option<Candidate> {
    candidates
        .iter()
        .copied()
        .min_by(|a, b| a.log_amplitude_error.total_cmp(&b.log_amplitude_error))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spectrum_of_a_pure_cosine_sits_on_its_frequency() {
        let side = FACE_SIDE;
        let image: Vec<f32> = (0..side * side)
            .map(|i| (2.0 * std::f32::consts::PI * 3.0 * (i % side) as f32 / side as f32).cos())
            .collect();
        let power = mean_power_spectrum(std::iter::once(image));
        let peak = (0..power.len())
            .max_by(|&a, &b| power[a].total_cmp(&power[b]))
            .unwrap_or(0);
        // Horizontal frequency 3 (or its mirror 45) in row 0.
        assert!(peak == 3 || peak == side - 3, "peak at {peak}");
    }

    #[test]
    fn equal_spectra_score_zero_and_a_uniform_gain_is_contrast() {
        let target: Vec<f64> = (0..16).map(|i| 1.0 + i as f64).collect();
        let same = score(1.0, &target, &target);
        assert!(same.log_amplitude_error < 1e-12);
        assert!((same.contrast - 1.0).abs() < 1e-6);
        let quarter_power: Vec<f64> = target.iter().map(|t| t * 4.0).collect();
        let halved = score(1.0, &quarter_power, &target);
        assert!((halved.contrast - 0.5).abs() < 1e-6, "{halved:?}");
        assert!(halved.log_amplitude_error < 1e-12);
    }

    #[test]
    fn a_white_noise_floor_is_separated_from_contrast() {
        let adapted: Vec<f64> = (0..64).map(|i| 100.0 / (1.0 + i as f64)).collect();
        let noise = 0.5;
        let target: Vec<f64> = adapted.iter().map(|a| 0.25 * a + noise).collect();
        let fit = score(1.0, &adapted, &target);
        assert!((fit.contrast - 0.5).abs() < 1e-4, "{fit:?}");
        let expected = (noise / FACE_LEN as f64).sqrt() as f32 * 255.0;
        assert!((fit.noise_grey_levels - expected).abs() < 1e-3, "{fit:?}");
        assert!(fit.log_amplitude_error < 1e-9, "{fit:?}");
    }
}
