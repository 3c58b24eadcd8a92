//! Mixup (Zhang et al. 2018): each batch is blended with a shuffled copy of itself, faces and
//! targets alike, `x = λ·xᵢ + (1 − λ)·xⱼ` with one `λ ~ Beta(α, α)` per batch (as the
//! authors' code draws it). On FER-2013 it is part of the 73.7 % ResNet-18 recipe issue 30
//! cites; here it is an option of `train`, a default only once validation shows it helps.
//!
//! The loss of a mixed batch is the same blend of the two label sets' losses
//! (`λ·CE(z, yᵢ) + (1 − λ)·CE(z, yⱼ)`), so label smoothing and class weights apply as
//! they are; distillation targets are blended like the faces.

use anyhow::{bail, Result};
use rand::seq::SliceRandom;
use rand::Rng;
use rand_distr::{Beta, Distribution};

/// Largest α accepted: at 1 λ is uniform; above it most batches are near half-and-half
/// blends, which no recipe uses.
const MAX_ALPHA: f32 = 4.0;

/// One batch's blend: `λ` and, for each face, the face it is blended with.
#[derive(Debug, Clone, PartialEq)]
pub struct Blend {
    pub lambda: f32,
    pub partner: Vec<usize>,
}

/// Checks `--mixup`'s α before a run starts.
pub fn validate_alpha(alpha: f32) -> Result<()> {
    if !(alpha.is_finite() && alpha > 0.0 && alpha <= MAX_ALPHA) {
        bail!("--mixup must be in (0, {MAX_ALPHA}] (0.2–0.4 is usual; omit it for no mixup)");
    }
    Ok(())
}

impl Blend {
    /// Draws the blend of a batch of `len` faces.
    pub fn draw(alpha: f32, len: usize, rng: &mut impl Rng) -> Blend {
        // validate_alpha ran at the start; a Beta that cannot be built mixes nothing.
        let lambda = Beta::new(alpha, alpha).map_or(1.0, |beta| beta.sample(rng));
        let mut partner: Vec<usize> = (0..len).collect();
        partner.shuffle(rng);
        Blend { lambda, partner }
    }

    /// Blends rows of `row_len` values (faces, or target probabilities) in place.
    pub fn rows(&self, values: &mut [f32], row_len: usize) {
        let original = values.to_vec();
        for (i, row) in values.chunks_exact_mut(row_len).enumerate() {
            let other = &original[self.partner[i] * row_len..][..row_len];
            for (v, o) in row.iter_mut().zip(other) {
                *v = self.lambda * *v + (1.0 - self.lambda) * o;
            }
        }
    }

    /// The partners' labels, for the loss's second term.
    pub fn partner_labels(&self, labels: &[i64]) -> Vec<i64> {
        self.partner.iter().map(|&j| labels[j]).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn alpha_is_checked() {
        for bad in [0.0, -1.0, f32::NAN, f32::INFINITY, 5.0] {
            assert!(validate_alpha(bad).is_err(), "{bad}");
        }
        assert!(validate_alpha(0.2).is_ok());
    }

    #[test]
    fn a_blend_is_a_convex_mix_of_each_row_and_its_partner() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(3);
        let blend = Blend::draw(0.4, 4, &mut rng);
        assert!((0.0..=1.0).contains(&blend.lambda));
        let mut sorted = blend.partner.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, vec![0, 1, 2, 3], "a permutation");
        let original: Vec<f32> = (0..8).map(|v| v as f32).collect();
        let mut mixed = original.clone();
        blend.rows(&mut mixed, 2);
        for i in 0..4 {
            for k in 0..2 {
                let j = blend.partner[i];
                let want =
                    blend.lambda * original[i * 2 + k] + (1.0 - blend.lambda) * original[j * 2 + k];
                assert!((mixed[i * 2 + k] - want).abs() < 1e-5);
            }
        }
        assert_eq!(
            blend.partner_labels(&[10, 11, 12, 13])[0],
            10 + blend.partner[0] as i64
        );
    }

    #[test]
    fn small_alpha_keeps_most_batches_near_one_face() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(5);
        let lambdas: Vec<f32> = (0..2000)
            .map(|_| Blend::draw(0.2, 2, &mut rng).lambda)
            .collect();
        let near_one_face = lambdas.iter().filter(|l| **l < 0.1 || **l > 0.9).count();
        assert!(near_one_face > 1000, "{near_one_face}");
        let mean = lambdas.iter().sum::<f32>() / 2000.0;
        assert!((mean - 0.5).abs() < 0.05, "symmetric: {mean}");
    }
}
