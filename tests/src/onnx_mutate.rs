//! Structured edits of ONNX models for the fuzz tests: the model is decoded with tract's own
//! protobuf types, an initializer's dimension, a graph input's dimension or a node attribute
//! is set to an extreme value (0, 1, −1, u32::MAX, 2³², i64::MAX, i64::MIN, a 2.24 TB
//! element count; NaN, ±inf, 1e30, subnormals for floats), and the model is encoded again —
//! so every run reaches shapes and attributes, which random byte edits almost never keep
//! decodable.

use proptest::prelude::*;
use prost::Message;
use tract_onnx::pb;

/// Integers for dimensions and integer attributes.
const EXTREME_I64: [i64; 12] = [
    0,
    1,
    -1,
    -2,
    4_294_967_295,
    4_294_967_296,
    4_000_000_000,
    1 << 40,
    560_000_000_000,
    i64::MAX,
    i64::MIN,
    7,
];

/// Floats for float attributes.
const EXTREME_F32: [f32; 10] = [
    0.0,
    -0.0,
    1.0,
    f32::NAN,
    f32::INFINITY,
    f32::NEG_INFINITY,
    1e30,
    -1e30,
    f32::MAX,
    1e-45,
];

/// One structured edit; indices are taken modulo what the model has.
#[derive(Debug, Clone)]
pub enum OnnxEdit {
    InitializerDim {
        initializer: u16,
        dim: u8,
        which: u8,
    },
    InputDim {
        dim: u8,
        which: u8,
    },
    /// An integer (`ints[element]`, else `i`) or, with `float`, a float attribute.
    Attribute {
        node: u16,
        attribute: u8,
        element: u8,
        which: u8,
        float: bool,
    },
}

pub fn onnx_edits() -> impl Strategy<Value = Vec<OnnxEdit>> {
    let edit = prop_oneof![
        3 => (any::<u16>(), any::<u8>(), any::<u8>())
            .prop_map(|(initializer, dim, which)| OnnxEdit::InitializerDim { initializer, dim, which }),
        1 => (any::<u8>(), any::<u8>()).prop_map(|(dim, which)| OnnxEdit::InputDim { dim, which }),
        4 => (any::<u16>(), any::<u8>(), any::<u8>(), any::<u8>(), prop::bool::weighted(0.25))
            .prop_map(|(node, attribute, element, which, float)| OnnxEdit::Attribute {
                node,
                attribute,
                element,
                which,
                float,
            }),
    ];
    proptest::collection::vec(edit, 1..4)
}

/// `model` (ONNX bytes) with `edits` applied; `None` when it does not decode.
pub fn apply_onnx(model: &[u8], edits: &[OnnxEdit]) -> Option<Vec<u8>> {
    let mut proto = pb::ModelProto::decode(model).ok()?;
    let graph = proto.graph.as_mut()?;
    for edit in edits {
        apply_one(graph, edit);
    }
    Some(proto.encode_to_vec())
}

fn pick<T>(items: &mut [T], index: impl Into<usize>) -> Option<&mut T> {
    let len = items.len();
    (len > 0).then(|| &mut items[index.into() % len])
}

fn apply_one(graph: &mut pb::GraphProto, edit: &OnnxEdit) {
    let int = |which: u8| EXTREME_I64[usize::from(which) % EXTREME_I64.len()];
    let float = |which: u8| EXTREME_F32[usize::from(which) % EXTREME_F32.len()];
    match *edit {
        OnnxEdit::InitializerDim {
            initializer,
            dim,
            which,
        } => {
            if let Some(tensor) = pick(&mut graph.initializer, initializer) {
                if let Some(d) = pick(&mut tensor.dims, dim) {
                    *d = int(which);
                }
            }
        }
        OnnxEdit::InputDim { dim, which } => {
            let dims = graph
                .input
                .first_mut()
                .and_then(|input| input.r#type.as_mut())
                .and_then(|t| match t.value.as_mut() {
                    Some(pb::type_proto::Value::TensorType(tensor)) => tensor.shape.as_mut(),
                    _ => None,
                });
            if let Some(d) = dims.and_then(|shape| pick(&mut shape.dim, dim)) {
                d.value = Some(pb::tensor_shape_proto::dimension::Value::DimValue(int(
                    which,
                )));
            }
        }
        OnnxEdit::Attribute {
            node,
            attribute,
            element,
            which,
            float: is_float,
        } => {
            let attribute =
                pick(&mut graph.node, node).and_then(|n| pick(&mut n.attribute, attribute));
            let Some(a) = attribute else { return };
            if is_float {
                match pick(&mut a.floats, element) {
                    Some(v) => *v = float(which),
                    None => a.f = float(which),
                }
            } else {
                match pick(&mut a.ints, element) {
                    Some(v) => *v = int(which),
                    None => a.i = int(which),
                }
            }
        }
    }
}
