//! Training-time augmentation as in the paper's Keras `ImageDataGenerator`: random x/y
//! shift, small rotation, horizontal flip, uncovered area filled from the nearest edge
//! pixel (`fill_mode='nearest'`). Pixel normalisation is the shared
//! [`ekspresi_common::prepare_face`] applied afterwards.
//!
//! Seeded through the caller's RNG, so a run is reproducible.

use ekspresi_common::FACE_SIDE;
use image::{GrayImage, Luma};
use imageproc::geometric_transformations::{warp_into_with, Interpolation};
use rand::Rng;

/// Ranges of the random transform.
#[derive(Debug, Clone, Copy, serde::Serialize, serde::Deserialize)]
pub struct AugmentConfig {
    /// Largest shift, as a fraction of the side (Keras `width_shift_range`).
    pub max_shift: f32,
    /// Largest rotation in degrees (Keras `rotation_range`).
    pub max_rotation_deg: f32,
    /// Flip left-right with probability one half.
    pub horizontal_flip: bool,
    /// Random erasing (Zhong et al. 2020): with this probability a rectangle of 2–33 % of
    /// the face, aspect 0.3–3.3, is filled with random grey. 0 (and runs saved before it): off.
    #[serde(default)]
    pub erase_probability: f32,
}

impl Default for AugmentConfig {
    fn default() -> Self {
        Self {
            max_shift: 0.1,
            max_rotation_deg: 10.0,
            horizontal_flip: true,
            erase_probability: 0.0,
        }
    }
}

/// One drawn transform, kept separate from drawing so it can be tested exactly.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Transform {
    pub shift_x: f32,
    pub shift_y: f32,
    pub rotation_rad: f32,
    pub flip: bool,
}

impl Transform {
    pub const IDENTITY: Transform = Transform {
        shift_x: 0.0,
        shift_y: 0.0,
        rotation_rad: 0.0,
        flip: false,
    };

    pub fn random(config: &AugmentConfig, rng: &mut impl Rng) -> Transform {
        let side = FACE_SIDE as f32;
        let mut symmetric = |limit: f32| {
            if limit > 0.0 {
                rng.random_range(-limit..=limit)
            } else {
                0.0
            }
        };
        let shift_x = symmetric(config.max_shift * side);
        let shift_y = symmetric(config.max_shift * side);
        let rotation_rad = symmetric(config.max_rotation_deg).to_radians();
        let flip = config.horizontal_flip && rng.random_bool(0.5);
        Transform {
            shift_x,
            shift_y,
            rotation_rad,
            flip,
        }
    }

    /// Where output pixel (x, y) samples the source: the inverse of
    /// flip → rotate about the centre → shift, with coordinates clamped to the image so the
    /// uncovered area repeats the nearest edge pixel.
    fn source_of(&self, x: f32, y: f32) -> (f32, f32) {
        let last = (FACE_SIDE - 1) as f32;
        let centre = last / 2.0;
        let (dx, dy) = (x - self.shift_x - centre, y - self.shift_y - centre);
        let (sin, cos) = (-self.rotation_rad).sin_cos();
        let (rx, ry) = (cos * dx - sin * dy + centre, sin * dx + cos * dy + centre);
        let rx = if self.flip { last - rx } else { rx };
        // imageproc's bilinear sampler needs x+1 inside the image, so the clamp stops a hair
        // before the last pixel: the weight left on its neighbour (1e-4) never moves a u8.
        let edge = last - 1e-4;
        (rx.clamp(0.0, edge), ry.clamp(0.0, edge))
    }
}

/// Applies `transform` to a 48×48 face (row-major grey bytes), writing into `out`.
pub fn apply(face: &[u8], transform: &Transform, out: &mut GrayImage) {
    let side = FACE_SIDE as u32;
    let source =
        GrayImage::from_raw(side, side, face.to_vec()).expect("faces are 48×48 by construction");
    warp_into_with(
        &source,
        |x, y| transform.source_of(x, y),
        Interpolation::Bilinear,
        Luma([0]),
        out,
    );
}

/// Random erasing: with `probability`, one rectangle of 2–33 % of the face's area and
/// aspect ratio 0.3–3.3 (drawn until it fits, at most 10 tries) is filled with uniform
/// random grey. Returns whether it erased.
pub fn erase(face: &mut GrayImage, probability: f32, rng: &mut impl Rng) -> bool {
    if probability <= 0.0 || !rng.random_bool(f64::from(probability.min(1.0))) {
        return false;
    }
    let side = FACE_SIDE as f32;
    for _ in 0..10 {
        let area = rng.random_range(0.02..0.33) * side * side;
        let aspect = rng.random_range(0.3f32.ln()..3.3f32.ln()).exp();
        let (w, h) = (
            (area * aspect).sqrt().round(),
            (area / aspect).sqrt().round(),
        );
        if w < 1.0 || h < 1.0 || w > side || h > side {
            continue;
        }
        let (w, h) = (w as u32, h as u32);
        let x = rng.random_range(0..=FACE_SIDE as u32 - w);
        let y = rng.random_range(0..=FACE_SIDE as u32 - h);
        for py in y..y + h {
            for px in x..x + w {
                face.put_pixel(px, py, Luma([rng.random()]));
            }
        }
        return true;
    }
    false
}

/// Crop training's random window: moves the prepared 48×48 `face` by a whole-pixel offset
/// of at most `margin` each way, so a net that reads the centre `48 − 2·margin` square sees
/// a random window of the face (every pixel it reads is the face's own; the edge repeats
/// only outside that square).
pub fn random_window(face: &mut [f32], margin: usize, rng: &mut impl Rng) {
    if margin == 0 {
        return;
    }
    let limit = i32::try_from(margin).unwrap_or(i32::MAX);
    let (dx, dy) = (
        rng.random_range(-limit..=limit) as isize,
        rng.random_range(-limit..=limit) as isize,
    );
    let original = face.to_vec();
    let last = FACE_SIDE as isize - 1;
    for (y, row) in face.chunks_exact_mut(FACE_SIDE).enumerate() {
        let source_y = (y as isize + dy).clamp(0, last) as usize;
        for (x, value) in row.iter_mut().enumerate() {
            let source_x = (x as isize + dx).clamp(0, last) as usize;
            *value = original[source_y * FACE_SIDE + source_x];
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn erasing_is_seeded_bounded_and_as_often_as_asked() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(5);
        let face = GrayImage::from_raw(48, 48, vec![7u8; 48 * 48]).unwrap();
        let mut erased = 0;
        for _ in 0..400 {
            let mut out = face.clone();
            if erase(&mut out, 0.5, &mut rng) {
                erased += 1;
                let changed = out.as_raw().iter().filter(|&&p| p != 7).count();
                // At most a third of the face (and a random grey may repeat the old one).
                assert!(changed <= 48 * 48 / 3 + 48, "{changed}");
            } else {
                assert_eq!(out, face);
            }
        }
        assert!(
            (160..=240).contains(&erased),
            "{erased} of 400 erased at p 0.5"
        );
        let mut out = face.clone();
        assert!(!erase(&mut out, 0.0, &mut rng));
        let again = |seed| {
            let mut out = face.clone();
            erase(&mut out, 1.0, &mut rand::rngs::StdRng::seed_from_u64(seed));
            out
        };
        assert_eq!(again(9), again(9));
    }

    #[test]
    fn a_random_window_is_a_whole_window_of_the_face() {
        let face: Vec<f32> = (0..FACE_SIDE * FACE_SIDE).map(|i| i as f32).collect();
        let (margin, side) = (4, FACE_SIDE - 8);
        let mut rng = rand::rngs::StdRng::seed_from_u64(9);
        let mut offsets = std::collections::HashSet::new();
        for _ in 0..200 {
            let mut moved = face.clone();
            random_window(&mut moved, margin, &mut rng);
            // The centre square's top-left pixel says where the window sits in the face.
            let corner = moved[margin * FACE_SIDE + margin] as usize;
            let (wy, wx) = (corner / FACE_SIDE, corner % FACE_SIDE);
            assert!(wy <= 2 * margin && wx <= 2 * margin, "({wx}, {wy})");
            for y in 0..side {
                for x in 0..side {
                    let seen = moved[(margin + y) * FACE_SIDE + margin + x];
                    assert_eq!(seen, face[(wy + y) * FACE_SIDE + wx + x]);
                }
            }
            offsets.insert((wx, wy));
        }
        assert!(offsets.len() > 40, "windows vary: {}", offsets.len());
        let mut still = face.clone();
        random_window(&mut still, 0, &mut rng);
        assert_eq!(still, face);
    }

    fn gradient_face() -> Vec<u8> {
        (0..FACE_SIDE * FACE_SIDE)
            .map(|i| ((i % FACE_SIDE) * 5) as u8)
            .collect()
    }

    /// imageproc's bilinear blend truncates instead of rounding, so a resampled value may
    /// sit one grey level under the exact one.
    fn close(a: u8, b: u8) -> bool {
        a.abs_diff(b) <= 1
    }

    #[test]
    fn identity_keeps_the_face() {
        let face = gradient_face();
        let mut out = GrayImage::new(48, 48);
        apply(&face, &Transform::IDENTITY, &mut out);
        assert!(out.as_raw().iter().zip(&face).all(|(&a, &b)| close(a, b)));
    }

    #[test]
    fn flip_mirrors_columns() {
        let face = gradient_face();
        let mut out = GrayImage::new(48, 48);
        let flip = Transform {
            flip: true,
            ..Transform::IDENTITY
        };
        apply(&face, &flip, &mut out);
        assert!(close(out.get_pixel(0, 10).0[0], face[47]));
        assert!(close(out.get_pixel(47, 10).0[0], face[0]));
        assert!(close(out.get_pixel(10, 10).0[0], face[37]));
    }

    #[test]
    fn shift_fills_uncovered_area_from_the_nearest_edge() {
        let face = gradient_face();
        let mut out = GrayImage::new(48, 48);
        let shift = Transform {
            shift_x: 5.0,
            ..Transform::IDENTITY
        };
        apply(&face, &shift, &mut out);
        // Columns 0..5 are uncovered: they repeat source column 0 (nearest fill).
        for x in 0..5 {
            assert_eq!(out.get_pixel(x, 3).0[0], face[0]);
        }
        assert_eq!(out.get_pixel(10, 3).0[0], face[5]);
    }

    #[test]
    fn random_transforms_are_seeded_and_within_range() {
        let config = AugmentConfig::default();
        let draw = |seed| {
            let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
            (0..50)
                .map(|_| Transform::random(&config, &mut rng))
                .collect::<Vec<_>>()
        };
        let first = draw(7);
        assert_eq!(first, draw(7));
        assert!(first
            .iter()
            .all(|t| t.shift_x.abs() <= 4.8 && t.rotation_rad.abs() <= 10f32.to_radians() + 1e-6));
        assert!(first.iter().any(|t| t.flip) && first.iter().any(|t| !t.flip));
    }
}
