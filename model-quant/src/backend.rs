//! Which burn backend trains the nets. `flex` (pure Rust) is the default and what CI uses;
//! `libtorch` (cargo feature `tch`, libtorch CPU from `scripts/libtorch.sh`) trains the same
//! nets, 1.7–1.9× faster than flex per epoch on a quiet 2-core machine (MODEL_CARD.md,
//! Training speed) — under the 2× that would make it worth a second default. Weights and checkpoints are
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
