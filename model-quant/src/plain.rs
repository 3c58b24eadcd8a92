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
    pub bias: Vec<f32>,
    pub relu: bool,
}

impl Conv {
    /// Side of the output map for a `side`×`side` input (stride 1).
    pub fn output_side(&self, side: usize) -> usize {
        side + 2 * self.padding - self.kernel + 1
    }
}

/// One inference layer.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum Layer {
    Conv(Conv),
    /// Max-pool with window = stride.
    MaxPool(usize),
}

/// A network as a plain layer list; the last layer is the 7-way head (no ReLU).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PlainNet {
    pub name: String,
    /// The centre crop's side the first conv reads (`None`: the whole 48×48 face).
    #[serde(default)]
    pub input_crop: Option<usize>,
    pub layers: Vec<Layer>,
}

impl PlainNet {
    pub fn convs(&self) -> impl Iterator<Item = &Conv> {
        self.layers.iter().filter_map(|l| match l {
            Layer::Conv(c) => Some(c),
            _ => None,
        })
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
        input_crop: arch.input_crop,
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
        bias,
        relu,
    })
}
