//! The networks, as burn modules built from one [`Arch`] description: the two the paper
//! compares — a LeNet-5 (3 conv + 2 fully-connected) and an AlexNet-style net (5 conv + 3 FC)
//! — and a VGG-style candidate for a stronger model within the Pi's budget.
//!
//! All are "conv blocks then dense blocks then a linear head" so that export and
//! quantization ([`crate::plain`]) handle them with the same code. Each conv block is
//! conv → [batch-norm] → ReLU → [max-pool]; each dense block is dropout → linear →
//! [batch-norm] → ReLU. The head outputs logits; softmax is added at export.

use burn::module::Module;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::pool::{MaxPool2d, MaxPool2dConfig};
use burn::nn::{
    BatchNorm, BatchNormConfig, Dropout, DropoutConfig, Linear, LinearConfig, PaddingConfig2d,
};
use burn::tensor::activation::relu;
use burn::tensor::{Device, Tensor};
use ekspresi_common::{contract::NUM_CLASSES, FACE_SIDE};
use serde::{Deserialize, Serialize};

/// One convolution block of an [`Arch`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConvSpec {
    pub channels: usize,
    pub kernel: usize,
    pub padding: usize,
    /// Max-pool window and stride after the ReLU (`None`: no pooling).
    pub pool: Option<usize>,
}

/// A network description: conv blocks, hidden dense widths, and regularisers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Arch {
    pub name: String,
    pub convs: Vec<ConvSpec>,
    /// Widths of the hidden fully-connected layers; the 7-way head comes after them.
    pub dense: Vec<usize>,
    pub batch_norm: bool,
    /// Dropout probability before each fully-connected layer (0 disables).
    pub dropout: f64,
    /// Crop training (issue 30): the net sees the centre `side`×`side` of the 48×48 face
    /// (the model contract's input is unchanged: the exported graph slices it), and training
    /// draws a random window of that side instead. `None`: the whole face.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input_crop: Option<usize>,
}

/// Smallest crop side accepted: under it the pools would leave too little of a face.
pub const MIN_CROP: usize = 32;

const fn conv(channels: usize, kernel: usize, padding: usize, pool: Option<usize>) -> ConvSpec {
    ConvSpec {
        channels,
        kernel,
        padding,
        pool,
    }
}

impl Arch {
    /// LeNet-5 as LeCun drew it (6/16/120 filters of 5×5, FC 84), on a 48×48×1 input.
    pub fn lenet5_classic() -> Arch {
        Arch {
            name: "lenet5-classic".into(),
            convs: vec![
                conv(6, 5, 0, Some(2)),
                conv(16, 5, 0, Some(2)),
                conv(120, 5, 0, None),
            ],
            dense: vec![84],
            batch_norm: false,
            dropout: 0.0,
            input_crop: None,
        }
    }

    /// A narrower widened LeNet-5 (32/64/128 filters of 3×3, "same" padding, FC 64) with
    /// batch-norm and dropout. ~0.39 M parameters.
    pub fn lenet5() -> Arch {
        Arch {
            name: "lenet5".into(),
            convs: vec![
                conv(32, 3, 1, Some(2)),
                conv(64, 3, 1, Some(2)),
                conv(128, 3, 1, Some(2)),
            ],
            dense: vec![64],
            batch_norm: true,
            dropout: 0.4,
            input_crop: None,
        }
    }

    /// The shipped LeNet-5: LeNet's 3 conv + 2 FC shape, widened (48 filters of 5×5, then 96
    /// and 160 of 3×3, "same" padding, FC 48) with batch-norm and light dropout.
    /// ~0.46 M parameters, < 0.5 MB int8.
    pub fn lenet5_wide() -> Arch {
        Arch {
            name: "lenet5-wide".into(),
            convs: vec![
                conv(48, 5, 2, Some(2)),
                conv(96, 3, 1, Some(2)),
                conv(160, 3, 1, Some(2)),
            ],
            dense: vec![48],
            batch_norm: true,
            dropout: 0.2,
            input_crop: None,
        }
    }

    /// AlexNet-style: 5 conv + 3 FC (two hidden of 256 and the head), scaled to 48×48.
    pub fn alexnet() -> Arch {
        Arch {
            name: "alexnet".into(),
            convs: vec![
                conv(64, 5, 2, Some(2)),
                conv(128, 3, 1, Some(2)),
                conv(128, 3, 1, None),
                conv(128, 3, 1, None),
                conv(64, 3, 1, Some(2)),
            ],
            dense: vec![256, 256],
            batch_norm: true,
            dropout: 0.5,
            input_crop: None,
        }
    }

    /// A VGG-style candidate for the stronger Pi-budget model: four blocks of two 3×3 convs
    /// (32, 64, 128, 256 filters, "same" padding, max-pool after each pair), FC 256, with
    /// batch-norm and dropout. ~1.76 M parameters, < 2 MB int8.
    pub fn vgg() -> Arch {
        let pair = |channels| [conv(channels, 3, 1, None), conv(channels, 3, 1, Some(2))];
        Arch {
            name: "vgg".into(),
            convs: [pair(32), pair(64), pair(128), pair(256)].concat(),
            dense: vec![256],
            batch_norm: true,
            dropout: 0.4,
            input_crop: None,
        }
    }

    /// The VGG-style stack made cheap enough to run twice a face (the face and its mirror
    /// image, averaged) inside the Pi budget of 4× the LeNet-5's time: one conv instead of a
    /// pair in the first two blocks (32, 64 filters), the pairs kept in the last two (128,
    /// 256), FC 256. The 32→32 conv at full 48×48 resolution alone was a third of the VGG's
    /// tract time. ~1.72 M parameters.
    pub fn vgg_lite() -> Arch {
        let pair = |channels| [conv(channels, 3, 1, None), conv(channels, 3, 1, Some(2))];
        let single = |channels| [conv(channels, 3, 1, Some(2))];
        Arch {
            name: "vgg-lite".into(),
            convs: [&single(32)[..], &single(64), &pair(128), &pair(256)].concat(),
            dense: vec![256],
            batch_norm: true,
            dropout: 0.4,
            input_crop: None,
        }
    }

    /// Every architecture `by_name` knows.
    pub const NAMES: [&'static str; 6] = [
        "lenet5-wide",
        "lenet5",
        "lenet5-classic",
        "alexnet",
        "vgg",
        "vgg-lite",
    ];

    pub fn by_name(name: &str) -> Option<Arch> {
        match name {
            "lenet5" => Some(Arch::lenet5()),
            "lenet5-classic" => Some(Arch::lenet5_classic()),
            "lenet5-wide" => Some(Arch::lenet5_wide()),
            "alexnet" => Some(Arch::alexnet()),
            "vgg" => Some(Arch::vgg()),
            "vgg-lite" => Some(Arch::vgg_lite()),
            _ => None,
        }
    }

    /// Side of the square the first conv reads: the crop, or the whole face.
    pub fn input_side(&self) -> usize {
        self.input_crop.unwrap_or(FACE_SIDE)
    }

    /// Checks `--crop`: within the face, not under [`MIN_CROP`], and centred on whole pixels
    /// (48 − side even).
    pub fn set_crop(&mut self, side: usize) -> anyhow::Result<()> {
        anyhow::ensure!(
            (MIN_CROP..FACE_SIDE).contains(&side) && (FACE_SIDE - side).is_multiple_of(2),
            "--crop must be an even side from {MIN_CROP} to {} (the face is {FACE_SIDE})",
            FACE_SIDE - 2
        );
        self.input_crop = Some(side);
        Ok(())
    }

    /// Pixels between the face's edge and a centred crop.
    pub fn crop_margin(&self) -> usize {
        (FACE_SIDE - self.input_side()) / 2
    }

    /// (channels, side) of the feature map the conv blocks hand to the first dense layer.
    pub fn feature_map(&self) -> (usize, usize) {
        let mut side = self.input_side();
        let mut channels = 1;
        for spec in &self.convs {
            side = side + 2 * spec.padding + 1 - spec.kernel;
            if let Some(pool) = spec.pool {
                side /= pool;
            }
            channels = spec.channels;
        }
        (channels, side)
    }

    /// Trainable parameters (weights and biases; batch-norm folds away at export).
    pub fn parameter_count(&self) -> usize {
        let mut count = 0;
        let mut channels_in = 1;
        for spec in &self.convs {
            count += spec.channels * (channels_in * spec.kernel * spec.kernel + 1);
            channels_in = spec.channels;
        }
        let (channels, side) = self.feature_map();
        let mut width_in = channels * side * side;
        for &width in self.dense.iter().chain([NUM_CLASSES].iter()) {
            count += width * (width_in + 1);
            width_in = width;
        }
        count
    }
}

#[derive(Module, Debug)]
pub struct ConvBlock {
    pub conv: Conv2d,
    pub norm: Option<BatchNorm>,
    pub pool: Option<MaxPool2d>,
}

#[derive(Module, Debug)]
pub struct DenseBlock {
    pub dropout: Dropout,
    pub linear: Linear,
    pub norm: Option<BatchNorm>,
}

/// A network built from an [`Arch`].
#[derive(Module, Debug)]
pub struct Net {
    /// The side of the centre crop the first conv reads, if the arch crops.
    pub crop_side: Option<usize>,
    pub convs: Vec<ConvBlock>,
    pub dense: Vec<DenseBlock>,
    pub head_dropout: Dropout,
    pub head: Linear,
}

impl Net {
    pub fn new(arch: &Arch, device: &Device) -> Net {
        let mut channels_in = 1;
        let convs = arch
            .convs
            .iter()
            .map(|spec| {
                let p = spec.padding;
                let block = ConvBlock {
                    conv: Conv2dConfig::new([channels_in, spec.channels], [spec.kernel; 2])
                        .with_padding(PaddingConfig2d::Explicit(p, p, p, p))
                        .with_bias(!arch.batch_norm)
                        .init(device),
                    norm: arch
                        .batch_norm
                        .then(|| BatchNormConfig::new(spec.channels).init(device)),
                    pool: spec
                        .pool
                        .map(|k| MaxPool2dConfig::new([k, k]).with_strides([k, k]).init()),
                };
                channels_in = spec.channels;
                block
            })
            .collect();
        let (channels, side) = arch.feature_map();
        let mut width_in = channels * side * side;
        let dense = arch
            .dense
            .iter()
            .map(|&width| {
                let block = DenseBlock {
                    dropout: DropoutConfig::new(arch.dropout).init(),
                    linear: LinearConfig::new(width_in, width)
                        .with_bias(!arch.batch_norm)
                        .init(device),
                    norm: arch
                        .batch_norm
                        .then(|| BatchNormConfig::new(width).init(device)),
                };
                width_in = width;
                block
            })
            .collect();
        Net {
            crop_side: arch.input_crop,
            convs,
            dense,
            head_dropout: DropoutConfig::new(arch.dropout).init(),
            head: LinearConfig::new(width_in, NUM_CLASSES).init(device),
        }
    }

    /// Logits `N×7` for input `N×1×48×48` (values 0..1, the model contract's input); a
    /// cropping net reads the centre of each face (training moves the face under it).
    pub fn forward(&self, input: Tensor<4>) -> Tensor<2> {
        let mut x = match self.crop_side {
            Some(side) => {
                let [n, c, height, _] = input.dims();
                let offset = height.saturating_sub(side) / 2;
                let window = offset..offset + side;
                input.slice([0..n, 0..c, window.clone(), window])
            }
            None => input,
        };
        for block in &self.convs {
            x = block.conv.forward(x);
            if let Some(norm) = &block.norm {
                x = norm.forward(x);
            }
            x = relu(x);
            if let Some(pool) = &block.pool {
                x = pool.forward(x);
            }
        }
        let mut x: Tensor<2> = x.flatten(1, 3);
        for block in &self.dense {
            x = block.linear.forward(block.dropout.forward(x));
            if let Some(norm) = &block.norm {
                x = norm.forward(x);
            }
            x = relu(x);
        }
        self.head.forward(self.head_dropout.forward(x))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn feature_maps_and_sizes() {
        assert_eq!(Arch::lenet5_classic().feature_map(), (120, 5));
        assert_eq!(Arch::lenet5().feature_map(), (128, 6));
        assert_eq!(Arch::alexnet().feature_map(), (64, 6));
        // Classic LeNet-5 on 48×48: 156 + 2,416 + 48,120 + 252,084 + 595.
        assert_eq!(Arch::lenet5_classic().parameter_count(), 303_371);
        // The shipped LeNet must stay under 0.5 MB as int8 (one byte per weight).
        assert!(Arch::lenet5().parameter_count() < 500_000);
        assert!(Arch::lenet5_wide().parameter_count() < 500_000);
        assert_eq!(Arch::lenet5_wide().feature_map(), (160, 6));
        assert_eq!(Arch::vgg().feature_map(), (256, 3));
        assert_eq!(Arch::vgg_lite().feature_map(), (256, 3));
        for name in Arch::NAMES {
            assert_eq!(Arch::by_name(name).map(|a| a.name), Some(name.to_owned()));
        }
    }

    #[test]
    fn forward_gives_one_logit_per_class() {
        let device = Device::flex();
        for arch in [Arch::lenet5(), Arch::lenet5_classic(), Arch::lenet5_wide()] {
            let net = Net::new(&arch, &device);
            let logits = net.forward(Tensor::zeros([2, 1, 48, 48], &device));
            assert_eq!(logits.dims(), [2, 7]);
        }
    }
}
