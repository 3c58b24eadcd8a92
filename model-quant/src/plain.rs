//! Lowers a trained [`Net`] to plain inference layers: batch-norm folded into the preceding
//! convolution or linear layer, dropout gone, and every fully-connected layer rewritten as a
//! convolution (the first one's kernel covers the whole feature map, the rest are 1×1).
//!
//! That single form — conv (+ReLU) and max-pool only — is what both the fp32 ONNX writer
//! ([`crate::onnx`]) and the int8 quantizer ([`crate::quantize`]) consume, and what tract's
//! integer kernels run.

use anyhow::{bail, Result};
use burn::nn::BatchNorm;
use burn::tensor::Tensor;
use serde::{Deserialize, Serialize};

use crate::nets::{Arch, Net};

/// A convolution with its bias, optionally followed by ReLU.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Conv {
    /// `[out, in, kernel, kernel]`, row-major.
    pub weight: Vec<f32>,
    pub out_channels: usize,
    pub in_channels: usize,
    pub kernel: usize,
    pub padding: usize,
    /// Step between output positions (1 everywhere except where the input is sub-sampled).
    #[serde(default = "unit_stride")]
    pub stride: usize,
    pub bias: Vec<f32>,
    pub relu: bool,
}

fn unit_stride() -> usize {
    1
}

impl Conv {
    /// A 1×1 single-channel conv that keeps every `stride`-th pixel of each row and column:
    /// the sub-sampling a net with [`Arch::input_stride`] > 1 does first.
    pub fn subsample(stride: usize) -> Conv {
        Conv {
            weight: vec![1.0],
            out_channels: 1,
            in_channels: 1,
            kernel: 1,
            padding: 0,
            stride,
            bias: vec![0.0],
            relu: false,
        }
    }

    /// Side of the output map for a `side`×`side` input.
    pub fn output_side(&self, side: usize) -> usize {
        (side + 2 * self.padding - self.kernel) / self.stride + 1
    }

    fn is_subsample(&self) -> bool {
        let identity = Conv::subsample(self.stride);
        self.kernel == 1
            && self.in_channels == 1
            && self.out_channels == 1
            && self.weight == identity.weight
            && self.bias == identity.bias
            && !self.relu
    }
}

/// One inference layer.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum Layer {
    /// Pads the (float) input by repeating its edge pixels; only as the first layer.
    EdgePad(usize),
    Conv(Conv),
    /// Max-pool with window = stride.
    MaxPool(usize),
}

/// A network as a plain layer list; the last layer is the 7-way head (no ReLU).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PlainNet {
    pub name: String,
    pub layers: Vec<Layer>,
}

impl PlainNet {
    pub fn convs(&self) -> impl Iterator<Item = &Conv> {
        self.layers.iter().filter_map(|l| match l {
            Layer::Conv(c) => Some(c),
            _ => None,
        })
    }

    /// Puts the domain adapter in front of the network (see [`InputAdapter`]). A net that
    /// starts by sub-sampling its input has that folded into the adapter: the blur is then
    /// evaluated only where a sample is kept.
    pub fn with_input_adapter(mut self, adapter: &InputAdapter) -> PlainNet {
        let mut stride = 1;
        if let Some(Layer::Conv(first)) = self.layers.first() {
            if first.is_subsample() {
                stride = first.stride;
                self.layers.remove(0);
            }
        }
        let (radius, taps) = adapter.taps();
        let mut weight = Vec::with_capacity(taps.len() * taps.len());
        for y in &taps {
            for x in &taps {
                weight.push(adapter.contrast * y * x);
            }
        }
        let kernel = taps.len();
        let conv = Conv {
            weight,
            out_channels: 1,
            in_channels: 1,
            kernel,
            padding: 0,
            stride,
            bias: vec![(1.0 - adapter.contrast) * adapter.mean_grey],
            relu: false,
        };
        let mut layers = vec![Layer::EdgePad(radius), Layer::Conv(conv)];
        layers.append(&mut self.layers);
        self.layers = layers;
        self
    }
}

/// A fixed input layer that maps sharp camera-like faces into the look of the training
/// faces: the FER-2013 `Training` rows we were given are blurred and lower in contrast than
/// `PublicTest` and than real camera crops (median horizontal gradient 3.8 vs 13.7 grey
/// levels), so a net trained on them fails on sharp faces. The adapter blurs (Gaussian,
/// `blur_sigma` px, edges repeated) and scales contrast about `mean_grey`; its values are
/// measured label-free on sharp reference faces, not fitted on test labels.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct InputAdapter {
    pub blur_sigma: f32,
    pub contrast: f32,
    pub mean_grey: f32,
}

impl InputAdapter {
    /// The blur's radius and its normalised 1-D Gaussian taps (cut at 3σ).
    pub fn taps(&self) -> (usize, Vec<f32>) {
        let radius = (3.0 * self.blur_sigma).ceil().max(1.0) as usize;
        let taps: Vec<f32> = (0..2 * radius + 1)
            .map(|i| {
                let d = i as f32 - radius as f32;
                (-d * d / (2.0 * self.blur_sigma * self.blur_sigma)).exp()
            })
            .collect();
        let total: f32 = taps.iter().sum();
        (radius, taps.into_iter().map(|t| t / total).collect())
    }

    /// What the adapter layer computes on one `side`×`side` image (values 0..1): the same
    /// separable blur with repeated edges and contrast about `mean_grey`.
    pub fn apply(&self, image: &[f32], side: usize) -> Vec<f32> {
        let (radius, taps) = self.taps();
        let clamp = |i: isize| i.clamp(0, side as isize - 1) as usize;
        let mut rows = vec![0.0; side * side];
        for y in 0..side {
            for x in 0..side {
                rows[y * side + x] = taps
                    .iter()
                    .enumerate()
                    .map(|(k, t)| {
                        t * image[y * side + clamp(x as isize + k as isize - radius as isize)]
                    })
                    .sum();
            }
        }
        let mut out = vec![0.0; side * side];
        for y in 0..side {
            for x in 0..side {
                let blurred: f32 = taps
                    .iter()
                    .enumerate()
                    .map(|(k, t)| {
                        t * rows[clamp(y as isize + k as isize - radius as isize) * side + x]
                    })
                    .sum();
                out[y * side + x] =
                    self.contrast * blurred + (1.0 - self.contrast) * self.mean_grey;
            }
        }
        out
    }
}

fn values<const D: usize>(tensor: Tensor<D>) -> Result<Vec<f32>> {
    tensor
        .into_data()
        .convert::<f32>()
        .try_to_vec::<f32>()
        .map_err(|e| anyhow::anyhow!("cannot read weights: {e:?}"))
}

/// Per-output-channel (scale, shift) that batch-norm applies in inference mode.
fn batch_norm_affine(norm: &BatchNorm) -> Result<(Vec<f32>, Vec<f32>)> {
    let gamma = values(norm.gamma.val())?;
    let beta = values(norm.beta.val())?;
    let mean = values(norm.running_mean.value())?;
    let var = values(norm.running_var.value())?;
    let scale: Vec<f32> = gamma
        .iter()
        .zip(&var)
        .map(|(g, v)| g / (v + norm.epsilon as f32).sqrt())
        .collect();
    let shift = beta
        .iter()
        .zip(&mean)
        .zip(&scale)
        .map(|((b, m), s)| b - m * s)
        .collect();
    Ok((scale, shift))
}

/// Folds `y = scale * (conv(x) + bias) + shift` into the conv's weights and bias.
fn fold(conv: &mut Conv, norm: Option<&BatchNorm>) -> Result<()> {
    let Some(norm) = norm else { return Ok(()) };
    let (scale, shift) = batch_norm_affine(norm)?;
    let per_out = conv.weight.len() / conv.out_channels;
    for (o, chunk) in conv.weight.chunks_exact_mut(per_out).enumerate() {
        chunk.iter_mut().for_each(|w| *w *= scale[o]);
        conv.bias[o] = conv.bias[o] * scale[o] + shift[o];
    }
    Ok(())
}

/// Lowers `net` (built from `arch`) to plain layers.
pub fn lower(arch: &Arch, net: &Net) -> Result<PlainNet> {
    let mut layers = Vec::new();
    if arch.input_stride > 1 {
        layers.push(Layer::Conv(Conv::subsample(arch.input_stride)));
    }
    for (spec, block) in arch.convs.iter().zip(&net.convs) {
        let weight = values(block.conv.weight.val())?;
        let bias = match &block.conv.bias {
            Some(b) => values(b.val())?,
            None => vec![0.0; spec.channels],
        };
        let mut conv = Conv {
            in_channels: weight.len() / (spec.channels * spec.kernel * spec.kernel),
            weight,
            out_channels: spec.channels,
            kernel: spec.kernel,
            padding: spec.padding,
            stride: 1,
            bias,
            relu: true,
        };
        fold(&mut conv, block.norm.as_ref())?;
        layers.push(Layer::Conv(conv));
        if let Some(pool) = spec.pool {
            layers.push(Layer::MaxPool(pool));
        }
    }
    let (channels, side) = arch.feature_map();
    let mut input_shape = (channels, side);
    for block in &net.dense {
        let mut conv = linear_as_conv(&block.linear, input_shape, true)?;
        fold(&mut conv, block.norm.as_ref())?;
        input_shape = (conv.out_channels, 1);
        layers.push(Layer::Conv(conv));
    }
    layers.push(Layer::Conv(linear_as_conv(&net.head, input_shape, false)?));
    Ok(PlainNet {
        name: arch.name.clone(),
        layers,
    })
}

/// A linear layer on the flattened `(channels, side, side)` map, as a conv whose kernel covers
/// the map. Burn stores the weight `[in, out]`; flatten order is (c, y, x), the same as a
/// conv kernel's, so the transpose is all it takes.
fn linear_as_conv(
    linear: &burn::nn::Linear,
    (channels, side): (usize, usize),
    relu: bool,
) -> Result<Conv> {
    let [d_in, d_out] = linear.weight.val().dims();
    if d_in != channels * side * side {
        bail!("linear layer takes {d_in} inputs, feature map has {channels}×{side}×{side}");
    }
    let weight_in_out = values(linear.weight.val())?;
    let mut weight = vec![0.0; d_in * d_out];
    for i in 0..d_in {
        for o in 0..d_out {
            weight[o * d_in + i] = weight_in_out[i * d_out + o];
        }
    }
    let bias = match &linear.bias {
        Some(b) => values(b.val())?,
        None => vec![0.0; d_out],
    };
    Ok(Conv {
        weight,
        out_channels: d_out,
        in_channels: channels,
        kernel: side,
        padding: 0,
        stride: 1,
        bias,
        relu,
    })
}
