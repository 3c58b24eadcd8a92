//! Writes ONNX graphs with the protobuf types tract-onnx exposes (`tract_onnx::pb`).
//!
//! We write the graph ourselves rather than through burn's exporter because the quantizer
//! needs full control of the exact op set tract runs with integer kernels (`QLinearConv`,
//! `MaxPool` on u8, `Flatten`, `DequantizeLinear`, `Softmax`), and the fp32 twin should be the
//! same graph with float convs so the two compare layer for layer.
//!
//! Both follow the model contract in [`ekspresi_common::contract`].
//!
//! Test-time mirror averaging, when asked for, is written into the graph itself ([`Readout`]):
//! the file then *is* the classifier the accuracy was measured on, and every consumer (the
//! kiosk, `evaluate`, the benches, onnxruntime) runs it without knowing.

use ekspresi_common::contract::{INPUT_NAME, NUM_CLASSES, OUTPUT_NAME};
use ekspresi_common::FACE_SIDE;
use tract_onnx::pb::{
    self, attribute_proto::AttributeType, tensor_proto::DataType, type_proto, AttributeProto,
    GraphProto, ModelProto, NodeProto, OperatorSetIdProto, TensorProto, TypeProto, ValueInfoProto,
};

use crate::plain::{Conv, Layer, PlainNet};

/// The opset we write; QLinearConv and per-axis DequantizeLinear are in it.
const OPSET: i64 = 13;

/// Accumulates nodes and initializers.
#[derive(Default)]
pub struct GraphBuilder {
    graph: GraphProto,
}

/// An attribute value for [`GraphBuilder::node`].
pub enum Attr {
    Int(i64),
    Ints(Vec<i64>),
    Str(&'static str),
}

impl GraphBuilder {
    pub fn new(name: &str) -> Self {
        Self {
            graph: GraphProto {
                name: name.to_owned(),
                ..Default::default()
            },
        }
    }

    fn initializer(
        &mut self,
        name: &str,
        dims: &[usize],
        data_type: DataType,
        raw: Vec<u8>,
    ) -> String {
        self.graph.initializer.push(TensorProto {
            name: name.to_owned(),
            dims: dims.iter().map(|&d| d as i64).collect(),
            data_type: data_type as i32,
            raw_data: raw,
            ..Default::default()
        });
        name.to_owned()
    }

    pub fn f32s(&mut self, name: &str, dims: &[usize], data: &[f32]) -> String {
        let raw = data.iter().flat_map(|v| v.to_le_bytes()).collect();
        self.initializer(name, dims, DataType::Float, raw)
    }

    pub fn i32s(&mut self, name: &str, dims: &[usize], data: &[i32]) -> String {
        let raw = data.iter().flat_map(|v| v.to_le_bytes()).collect();
        self.initializer(name, dims, DataType::Int32, raw)
    }

    pub fn i8s(&mut self, name: &str, dims: &[usize], data: &[i8]) -> String {
        let raw = data.iter().map(|&v| v as u8).collect();
        self.initializer(name, dims, DataType::Int8, raw)
    }

    pub fn i64s(&mut self, name: &str, dims: &[usize], data: &[i64]) -> String {
        let raw = data.iter().flat_map(|v| v.to_le_bytes()).collect();
        self.initializer(name, dims, DataType::Int64, raw)
    }

    pub fn u8s(&mut self, name: &str, dims: &[usize], data: &[u8]) -> String {
        self.initializer(name, dims, DataType::Uint8, data.to_vec())
    }

    /// Adds a node; its (single) output is named `output`.
    pub fn node(
        &mut self,
        op: &str,
        inputs: &[&str],
        output: &str,
        attrs: Vec<(&str, Attr)>,
    ) -> String {
        let attribute = attrs
            .into_iter()
            .map(|(name, value)| match value {
                Attr::Int(i) => AttributeProto {
                    name: name.to_owned(),
                    r#type: AttributeType::Int as i32,
                    i,
                    ..Default::default()
                },
                Attr::Ints(ints) => AttributeProto {
                    name: name.to_owned(),
                    r#type: AttributeType::Ints as i32,
                    ints,
                    ..Default::default()
                },
                Attr::Str(text) => AttributeProto {
                    name: name.to_owned(),
                    r#type: AttributeType::String as i32,
                    s: text.as_bytes().to_vec(),
                    ..Default::default()
                },
            })
            .collect();
        self.graph.node.push(NodeProto {
            name: output.to_owned(),
            op_type: op.to_owned(),
            input: inputs.iter().map(|s| s.to_string()).collect(),
            output: vec![output.to_owned()],
            attribute,
            ..Default::default()
        });
        output.to_owned()
    }

    /// Finishes the model: the contract's input and the given float outputs (`N×…`).
    pub fn finish(mut self, outputs: &[(&str, Vec<usize>)], doc: &str) -> ModelProto {
        self.graph
            .input
            .push(value_info(INPUT_NAME, &[1, FACE_SIDE, FACE_SIDE]));
        for (name, dims) in outputs {
            self.graph.output.push(value_info(name, dims));
        }
        ModelProto {
            ir_version: 7,
            producer_name: "ekspresi model-quant".into(),
            producer_version: env!("CARGO_PKG_VERSION").into(),
            doc_string: doc.to_owned(),
            opset_import: vec![OperatorSetIdProto {
                domain: String::new(),
                version: OPSET,
            }],
            graph: Some(self.graph),
            ..Default::default()
        }
    }
}

/// A float tensor `N × dims` with a symbolic batch `N`.
fn value_info(name: &str, dims: &[usize]) -> ValueInfoProto {
    use pb::tensor_shape_proto::{dimension::Value, Dimension};
    let mut dim = vec![Dimension {
        value: Some(Value::DimParam("N".into())),
        ..Default::default()
    }];
    dim.extend(dims.iter().map(|&d| Dimension {
        value: Some(Value::DimValue(d as i64)),
        ..Default::default()
    }));
    ValueInfoProto {
        name: name.to_owned(),
        r#type: Some(TypeProto {
            value: Some(type_proto::Value::TensorType(type_proto::Tensor {
                elem_type: DataType::Float as i32,
                shape: Some(pb::TensorShapeProto { dim }),
            })),
            ..Default::default()
        }),
        ..Default::default()
    }
}

pub fn conv_attrs(conv: &Conv) -> Vec<(&'static str, Attr)> {
    let (k, p) = (conv.kernel as i64, conv.padding as i64);
    vec![
        ("kernel_shape", Attr::Ints(vec![k, k])),
        ("pads", Attr::Ints(vec![p, p, p, p])),
        ("strides", Attr::Ints(vec![1, 1])),
    ]
}

pub fn pool_attrs(size: usize) -> Vec<(&'static str, Attr)> {
    let s = size as i64;
    vec![
        ("kernel_shape", Attr::Ints(vec![s, s])),
        ("strides", Attr::Ints(vec![s, s])),
    ]
}

/// How a graph turns each input face into its probabilities.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Readout {
    /// One pass of the net.
    #[default]
    Single,
    /// The face and its left-right mirror image, one batch of 2N through the net, their
    /// probabilities averaged (twice the work a face).
    MirrorAverage,
}

impl Readout {
    /// The tensor the net's first layer reads: the input, or input and mirror stacked.
    pub fn begin(self, g: &mut GraphBuilder) -> String {
        match self {
            Readout::Single => INPUT_NAME.to_owned(),
            Readout::MirrorAverage => {
                let reversed: Vec<i64> = (0..FACE_SIDE as i64).rev().collect();
                let columns = g.i64s("mirror_columns", &[FACE_SIDE], &reversed);
                let mirrored = g.node(
                    "Gather",
                    &[INPUT_NAME, &columns],
                    "input_mirrored",
                    vec![("axis", Attr::Int(3))],
                );
                g.node(
                    "Concat",
                    &[INPUT_NAME, &mirrored],
                    "input_pairs",
                    vec![("axis", Attr::Int(0))],
                )
            }
        }
    }

    /// Softmax of `logits` into the contract's output (averaging each face's pair).
    pub fn end(self, g: &mut GraphBuilder, logits: &str) -> String {
        let softmax = |g: &mut GraphBuilder, output: &str| {
            g.node("Softmax", &[logits], output, vec![("axis", Attr::Int(1))])
        };
        match self {
            Readout::Single => softmax(g, OUTPUT_NAME),
            Readout::MirrorAverage => {
                let stacked = softmax(g, "probabilities_stacked");
                // Rows 0..N are the faces, N..2N their mirrors: [2, N, 7], mean over axis 0.
                let shape = g.i64s("pairs_shape", &[3], &[2, -1, NUM_CLASSES as i64]);
                let pairs = g.node("Reshape", &[&stacked, &shape], "probability_pairs", vec![]);
                g.node(
                    "ReduceMean",
                    &[&pairs],
                    OUTPUT_NAME,
                    vec![("axes", Attr::Ints(vec![0])), ("keepdims", Attr::Int(0))],
                )
            }
        }
    }
}

/// The centre `side`×`side` of each face in `x` (`N×1×48×48`), when the net crops: a
/// `Slice` on the two spatial axes, so the model contract's input stays the whole face.
pub fn centre_crop(g: &mut GraphBuilder, x: String, crop: Option<usize>) -> String {
    let Some(side) = crop else {
        return x;
    };
    let offset = ((FACE_SIDE - side) / 2) as i64;
    let starts = g.i64s("crop_starts", &[2], &[offset, offset]);
    let ends = g.i64s("crop_ends", &[2], &[offset + side as i64; 2]);
    let axes = g.i64s("crop_axes", &[2], &[2, 3]);
    g.node(
        "Slice",
        &[&x, &starts, &ends, &axes],
        "input_cropped",
        vec![],
    )
}

/// Name of conv `index`'s output activation (after its ReLU, if any).
pub fn activation_name(index: usize) -> String {
    format!("act{index}")
}

/// The fp32 model. With `expose_activations`, every conv's output activation is also a
/// graph output (`act0`, `act1`, …, `N×C×H×W`), which calibration reads (single readout
/// only: a mirrored batch would be 2N).
pub fn fp32_model(net: &PlainNet, readout: Readout, expose_activations: bool) -> ModelProto {
    let mut g = GraphBuilder::new(&net.name);
    let begun = readout.begin(&mut g);
    let mut x = centre_crop(&mut g, begun, net.input_crop);
    let mut activations = Vec::new();
    let mut side = net.input_crop.unwrap_or(FACE_SIDE);
    let mut conv_index = 0;
    for (i, layer) in net.layers.iter().enumerate() {
        match layer {
            Layer::Conv(conv) => {
                let dims = [
                    conv.out_channels,
                    conv.in_channels,
                    conv.kernel,
                    conv.kernel,
                ];
                let w = g.f32s(&format!("w{conv_index}"), &dims, &conv.weight);
                let b = g.f32s(&format!("b{conv_index}"), &[conv.out_channels], &conv.bias);
                let name = activation_name(conv_index);
                let conv_out = if conv.relu {
                    format!("conv{conv_index}")
                } else {
                    name.clone()
                };
                x = g.node("Conv", &[&x, &w, &b], &conv_out, conv_attrs(conv));
                if conv.relu {
                    x = g.node("Relu", &[&x], &name, vec![]);
                }
                side = conv.output_side(side);
                activations.push((name, vec![conv.out_channels, side, side]));
                conv_index += 1;
            }
            Layer::MaxPool(size) => {
                x = g.node("MaxPool", &[&x], &format!("pool{i}"), pool_attrs(*size));
                side /= size;
            }
        }
    }
    let flat = g.node("Flatten", &[&x], "logits", vec![("axis", Attr::Int(1))]);
    readout.end(&mut g, &flat);
    let mut outputs = vec![(OUTPUT_NAME, vec![NUM_CLASSES])];
    if expose_activations && readout == Readout::Single {
        outputs.extend(activations.iter().map(|(n, d)| (n.as_str(), d.clone())));
    }
    g.finish(
        &outputs,
        "Ekspresi expression model, fp32. Input `input` N×1×48×48 grey/255; output \
         `probabilities` N×7 in FER-2013 label order (angry, disgust, fear, happy, sad, \
         surprise, neutral).",
    )
}

/// Serialises a model to ONNX bytes.
pub fn to_bytes(model: &ModelProto) -> Vec<u8> {
    prost::Message::encode_to_vec(model)
}
