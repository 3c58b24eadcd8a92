//! Post-training static int8 quantization of a [`PlainNet`] into the one ONNX form that
//! tract 0.23 runs with integer kernels:
//!
//! `QuantizeLinear` (input grey/255 → u8, scale 1/255, exact) → for each layer a `QLinearConv`
//! (u8 activations, s8 weights, i32 bias, ReLU folded in as an output range starting at
//! zero point 0) with `MaxPool` on the u8 tensors between them → `Flatten` →
//! `DequantizeLinear` → float `Softmax`.
//!
//! Activation ranges come from running the fp32 twin over real calibration faces (min/max
//! of each conv's output). Weight scales are per tensor or per output channel.
//! Ops tract loads but does not run in integers (QDQ graphs, `QGemm`, `QLinearAdd`,
//! `QLinearSoftmax`) are deliberately not used.

use anyhow::{ensure, Result};
use ekspresi_common::contract::{INPUT_LEN, NUM_CLASSES, OUTPUT_NAME};
use ekspresi_common::model::ExpressionModel;
use serde::{Deserialize, Serialize};
use tract_onnx::pb::ModelProto;
use tract_onnx::prelude::Framework;

use crate::onnx::{self, conv_attrs, pool_attrs, Attr, GraphBuilder, Readout};
use crate::plain::{Conv, Layer, PlainNet};

/// How weights are scaled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
pub enum WeightGranularity {
    /// One scale per weight tensor.
    PerTensor,
    /// One scale per output channel.
    PerChannel,
}

/// Observed range of each conv's output over the calibration faces.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Calibration {
    pub ranges: Vec<(f32, f32)>,
    pub faces: usize,
}

/// Runs the fp32 twin over `faces` (prepared input, `k × 2304`) and records each conv
/// output's min and max.
pub fn calibrate(net: &PlainNet, faces: &[f32]) -> Result<Calibration> {
    const BATCH: usize = 50;
    let model = onnx::fp32_model(net, Readout::Single, true);
    let parsed = ekspresi_common::model::onnx().model_for_proto_model(&model)?;
    let runner = ExpressionModel::from_inference_model(parsed, BATCH)?;
    let n_convs = net.convs().count();
    let mut ranges = vec![(f32::INFINITY, f32::NEG_INFINITY); n_convs];
    let n_faces = faces.len() / INPUT_LEN;
    ensure!(
        n_faces >= BATCH,
        "calibration needs at least {BATCH} faces, got {n_faces}"
    );
    for chunk in faces.chunks_exact(BATCH * INPUT_LEN) {
        let outputs = runner.all_outputs(chunk)?;
        for (range, activation) in ranges.iter_mut().zip(&outputs[1..]) {
            for &v in activation {
                range.0 = range.0.min(v);
                range.1 = range.1.max(v);
            }
        }
    }
    Ok(Calibration {
        ranges,
        faces: n_faces / BATCH * BATCH,
    })
}

/// Quantization parameters of a u8 tensor.
#[derive(Debug, Clone, Copy)]
struct U8Params {
    scale: f32,
    zero_point: u8,
}

impl U8Params {
    /// Covers `[min, max]` (stretched to include 0, as ONNX requires zero to be exact).
    fn covering(min: f32, max: f32) -> Self {
        let (min, max) = (min.min(0.0), max.max(0.0));
        let scale = ((max - min) / 255.0).max(1e-8);
        let zero_point = (-min / scale).round().clamp(0.0, 255.0) as u8;
        Self { scale, zero_point }
    }
}

/// Symmetric s8 weights with their scale(s).
struct QuantWeights {
    values: Vec<i8>,
    scales: Vec<f32>,
}

fn quantize_weights(conv: &Conv, granularity: WeightGranularity) -> QuantWeights {
    let per_out = conv.weight.len() / conv.out_channels;
    let max_abs = |w: &[f32]| w.iter().fold(0.0f32, |m, v| m.max(v.abs())).max(1e-8);
    let scales: Vec<f32> = match granularity {
        WeightGranularity::PerTensor => vec![max_abs(&conv.weight) / 127.0],
        WeightGranularity::PerChannel => conv
            .weight
            .chunks_exact(per_out)
            .map(|w| max_abs(w) / 127.0)
            .collect(),
    };
    let scale_of = |o: usize| scales[if scales.len() == 1 { 0 } else { o }];
    let values = conv
        .weight
        .iter()
        .enumerate()
        .map(|(i, w)| (w / scale_of(i / per_out)).round().clamp(-127.0, 127.0) as i8)
        .collect();
    QuantWeights { values, scales }
}

/// Builds the int8 model of `net` with `calibration`'s activation ranges.
pub fn int8_model(
    net: &PlainNet,
    calibration: &Calibration,
    granularity: WeightGranularity,
    readout: Readout,
) -> Result<ModelProto> {
    ensure!(
        calibration.ranges.len() == net.convs().count(),
        "calibration has {} ranges for {} convs",
        calibration.ranges.len(),
        net.convs().count()
    );
    let mut g = GraphBuilder::new(&format!("{}-int8", net.name));
    // grey/255 quantized with scale 1/255 gives back the grey value exactly.
    let mut input_params = U8Params {
        scale: 1.0 / 255.0,
        zero_point: 0,
    };
    let s = g.f32s("input_scale", &[], &[input_params.scale]);
    let z = g.u8s("input_zero_point", &[], &[0]);
    let begun = readout.begin(&mut g);
    let input = crate::onnx::centre_crop(&mut g, begun, net.input_crop);
    let mut x = g.node("QuantizeLinear", &[&input, &s, &z], "input_q", vec![]);
    let mut conv_index = 0;
    for (i, layer) in net.layers.iter().enumerate() {
        match layer {
            Layer::Conv(conv) => {
                let (min, max) = calibration.ranges[conv_index];
                // A ReLU'd conv outputs [0, max]: zero point 0 makes the u8 clamp the ReLU.
                let output_params = if conv.relu {
                    U8Params::covering(0.0, max)
                } else {
                    U8Params::covering(min, max)
                };
                x = qlinear_conv(
                    &mut g,
                    &x,
                    conv,
                    conv_index,
                    input_params,
                    output_params,
                    granularity,
                );
                input_params = output_params;
                conv_index += 1;
            }
            Layer::MaxPool(size) => {
                x = g.node("MaxPool", &[&x], &format!("pool{i}"), pool_attrs(*size));
            }
        }
    }
    let flat = g.node("Flatten", &[&x], "logits_q", vec![("axis", Attr::Int(1))]);
    let s = g.f32s("logits_scale", &[], &[input_params.scale]);
    let z = g.u8s("logits_zero_point", &[], &[input_params.zero_point]);
    let logits = g.node("DequantizeLinear", &[&flat, &s, &z], "logits", vec![]);
    readout.end(&mut g, &logits);
    Ok(g.finish(
        &[(OUTPUT_NAME, vec![NUM_CLASSES])],
        "Ekspresi expression model, int8 (QLinearConv, u8 activations, s8 weights). Input \
         `input` N×1×48×48 grey/255; output `probabilities` N×7 in FER-2013 label order \
         (angry, disgust, fear, happy, sad, surprise, neutral).",
    ))
}

fn qlinear_conv(
    g: &mut GraphBuilder,
    x: &str,
    conv: &Conv,
    index: usize,
    input: U8Params,
    output: U8Params,
    granularity: WeightGranularity,
) -> String {
    let weights = quantize_weights(conv, granularity);
    let dims = [
        conv.out_channels,
        conv.in_channels,
        conv.kernel,
        conv.kernel,
    ];
    let scale_dims: Vec<usize> = if weights.scales.len() == 1 {
        vec![]
    } else {
        vec![conv.out_channels]
    };
    let bias: Vec<i32> = conv
        .bias
        .iter()
        .enumerate()
        .map(|(o, b)| {
            let w_scale = weights.scales[if weights.scales.len() == 1 { 0 } else { o }];
            (b / (input.scale * w_scale)).round() as i32
        })
        .collect();
    let names = [
        g.f32s(&format!("x{index}_scale"), &[], &[input.scale]),
        g.u8s(&format!("x{index}_zero_point"), &[], &[input.zero_point]),
        g.i8s(&format!("w{index}_q"), &dims, &weights.values),
        g.f32s(&format!("w{index}_scale"), &scale_dims, &weights.scales),
        g.i8s(
            &format!("w{index}_zero_point"),
            &scale_dims,
            &vec![0; weights.scales.len()],
        ),
        g.f32s(&format!("y{index}_scale"), &[], &[output.scale]),
        g.u8s(&format!("y{index}_zero_point"), &[], &[output.zero_point]),
        g.i32s(&format!("b{index}_q"), &[conv.out_channels], &bias),
    ];
    let inputs: Vec<&str> = std::iter::once(x)
        .chain(names.iter().map(String::as_str))
        .collect();
    g.node(
        "QLinearConv",
        &inputs,
        &format!("q{index}"),
        conv_attrs(conv),
    )
}
