//! Which burn backend trains the nets. `flex` (pure Rust) is the default and what CI uses;
//! `libtorch` (cargo feature `tch`, libtorch CPU from `scripts/libtorch.sh`) trains the same
//! nets; whether it is fast enough to keep is measured by the `model_speed` bench (1.1–1.2×
//! flex per epoch on 2 loaded cores so far, see MODEL_CARD.md). Weights and checkpoints are
//! backend-independent, so a run may resume on the other backend.

use burn::tensor::Device;
use clap::ValueEnum;

/// A CPU training backend compiled into this binary.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Backend {
    /// burn's pure-Rust CPU backend.
    Flex,
    /// libtorch's CPU kernels through burn-tch (needs `--features tch`).
    #[cfg(feature = "tch")]
    Libtorch,
}

impl Backend {
    /// Every backend this binary can train on.
    pub fn compiled() -> Vec<Backend> {
        Backend::value_variants().to_vec()
    }

    pub fn name(self) -> &'static str {
        match self {
            Backend::Flex => "flex",
            #[cfg(feature = "tch")]
            Backend::Libtorch => "libtorch",
        }
    }

    /// The inference device of this backend (call `.autodiff()` on it to train).
    pub fn device(self) -> Device {
        match self {
            Backend::Flex => Device::flex(),
            // burn marks burn-tch deprecated in favour of its CubeCL backends; it is kept
            // here only while it measures faster than flex (MODEL_CARD.md, Training speed).
            #[cfg(feature = "tch")]
            #[allow(deprecated)]
            Backend::Libtorch => Device::libtorch(),
        }
    }
}
