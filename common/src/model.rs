//! Runs an expression model that follows the [contract](crate::contract) in tract.
//!
//! The trainer evaluates its exported models with this runner and the firmware classifies
//! faces with it, so both measure the same thing. tract turns the int8 `QLinearConv` graph
//! into integer matrix-multiply kernels; the model is optimised once for a fixed batch size.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use tract_onnx::prelude::*;
use tract_onnx::tract_core::plan::SimplePlan;

use crate::contract::{INPUT_LEN, NUM_CLASSES};
use crate::FACE_SIDE;

type Plan = Arc<SimplePlan<TypedFact, Box<dyn TypedOp>>>;

/// Why a model could not be loaded or run.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error("cannot read model {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{context}: {message}")]
    Tract { context: String, message: String },
    #[error("model output has {actual} values, expected {expected} (batch × 7)")]
    OutputShape { expected: usize, actual: usize },
    #[error("input has {actual} values, expected a multiple of {INPUT_LEN}")]
    InputShape { actual: usize },
    #[error("model breaks the contract: {0}")]
    Contract(String),
    #[error("face input: {0}")]
    Input(#[from] crate::grey::PrepareError),
}

fn tract_error(context: impl Into<String>) -> impl FnOnce(TractError) -> ModelError {
    let context = context.into();
    move |e| ModelError::Tract {
        context,
        message: format!("{e:#}"),
    }
}

/// An optimised, runnable expression model with a fixed batch size.
pub struct ExpressionModel {
    plan: Plan,
    batch: usize,
}

impl ExpressionModel {
    /// Loads an ONNX file for batches of `batch` faces.
    pub fn load(path: &Path, batch: usize) -> Result<Self, ModelError> {
        let bytes = std::fs::read(path).map_err(|source| ModelError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::from_bytes(&bytes, batch).map_err(|e| match e {
            ModelError::Tract { context, message } => ModelError::Tract {
                context: format!("{}: {context}", path.display()),
                message,
            },
            other => other,
        })
    }

    /// Loads ONNX bytes for batches of `batch` faces, and checks the contract at load (not at
    /// the first face, after a session folder exists): one `N×1×48×48` input, an `N×7`
    /// output, and finite probabilities summing to 1 on a probe face.
    pub fn from_bytes(bytes: &[u8], batch: usize) -> Result<Self, ModelError> {
        // tract panics on some malformed graphs (fuzzing found one: an output naming no value
        // indexes a map that lacks it; a constant broadcast to terabytes is another): loading
        // outside data must end in an error, with no panic text printed first.
        crate::guard::quietly(|| Self::from_bytes_unguarded(bytes, batch)).unwrap_or_else(
            |message| {
                Err(ModelError::Tract {
                    context: "not a loadable ONNX model".into(),
                    message: format!("tract failed on it ({message})"),
                })
            },
        )
    }

    fn from_bytes_unguarded(bytes: &[u8], batch: usize) -> Result<Self, ModelError> {
        let model = onnx()
            .model_for_read(&mut &bytes[..])
            .map_err(tract_error("not a loadable ONNX model"))?;
        let (inputs, outputs) = (
            model.input_outlets().map_or(0, |o| o.len()),
            model.output_outlets().map_or(0, |o| o.len()),
        );
        if inputs != 1 || outputs == 0 {
            return Err(ModelError::Contract(format!(
                "{inputs} inputs and {outputs} outputs (one input and a probabilities output needed)"
            )));
        }
        let model = Self::from_inference_model(model, batch)?;
        model.probe()?;
        Ok(model)
    }

    /// Runs a mid-grey face: every output row must be 7 finite probabilities summing to 1.
    fn probe(&self) -> Result<(), ModelError> {
        let probe = vec![0.5; self.batch * INPUT_LEN];
        for row in self.run_batch(probe)? {
            let sum: f32 = row.iter().sum();
            let valid = row
                .iter()
                .all(|p| p.is_finite() && (-1e-4..=1.0001).contains(p));
            if !valid || (sum - 1.0).abs() > 1e-2 {
                return Err(ModelError::Contract(format!(
                    "on a probe face it gives {row:?} (sum {sum}), not finite probabilities summing to 1"
                )));
            }
        }
        Ok(())
    }

    /// Optimises an already parsed model for batches of `batch` faces.
    pub fn from_inference_model(model: InferenceModel, batch: usize) -> Result<Self, ModelError> {
        let plan = optimised(model, batch)?
            .into_runnable()
            .map_err(tract_error("cannot plan the model"))?;
        Ok(Self { plan, batch })
    }

    /// The optimised graph, for inspection (which kernels tract chose).
    pub fn optimised_graph(&self) -> &TypedModel {
        self.plan.model()
    }

    pub fn batch(&self) -> usize {
        self.batch
    }

    /// The matrix-multiply kernels tract chose on this CPU, one entry per matmul of the
    /// optimised graph (e.g. `arm64simd_mmm_i32_8x8_dot` where the CPU has the dot-product
    /// instructions, `arm64simd_mmm_i32_8x8` where it has not): which of tract's integer
    /// paths a model really runs on a given core.
    pub fn matmul_kernels(&self) -> Vec<String> {
        self.plan
            .model()
            .nodes()
            .iter()
            .filter(|node| node.op().name() == "OptMatMul")
            .map(|node| {
                let debug = format!("{:?}", node.op());
                let mut kernels: Vec<&str> = debug
                    .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                    .filter(|token| token.contains("mmm_"))
                    .collect();
                kernels.dedup();
                kernels.join("+")
            })
            .collect()
    }

    /// Multiply-adds per face, as tract counts them over its optimised graph (integer and
    /// float alike): the model's work independent of the machine it runs on.
    pub fn multiply_adds_per_face(&self) -> Result<u64, ModelError> {
        use tract_onnx::tract_core::internal::Cost;
        let model = self.plan.model();
        let mut total = 0u64;
        for node in model.nodes() {
            let inputs = model
                .node_input_facts(node.id)
                .map_err(tract_error("graph facts"))?;
            let costs = node.op.cost(&inputs).map_err(tract_error("op cost"))?;
            for (cost, count) in costs {
                if matches!(cost, Cost::FMA(_)) {
                    let count = count.to_i64().map_err(|e| ModelError::Tract {
                        context: "symbolic op cost".into(),
                        message: format!("{e:?}"),
                    })?;
                    total = total.saturating_add(count.max(0) as u64);
                }
            }
        }
        Ok(total / self.batch.max(1) as u64)
    }

    /// Class probabilities for each face in `input` (`k × 48 × 48` prepared values). Any
    /// number of faces; they are run in batches, the last one padded.
    pub fn classify(&self, input: &[f32]) -> Result<Vec<[f32; NUM_CLASSES]>, ModelError> {
        if !input.len().is_multiple_of(INPUT_LEN) {
            return Err(ModelError::InputShape {
                actual: input.len(),
            });
        }
        let mut out = Vec::with_capacity(input.len() / INPUT_LEN);
        for chunk in input.chunks(self.batch * INPUT_LEN) {
            let faces = chunk.len() / INPUT_LEN;
            let mut batch = chunk.to_vec();
            batch.resize(self.batch * INPUT_LEN, 0.0);
            let probabilities = self.run_batch(batch)?;
            out.extend(probabilities.into_iter().take(faces));
        }
        Ok(out)
    }

    /// Every graph output, flattened, for exactly one full batch (calibration reads the
    /// intermediate activations this way).
    pub fn all_outputs(&self, batch: &[f32]) -> Result<Vec<Vec<f32>>, ModelError> {
        if batch.len() != self.batch * INPUT_LEN {
            return Err(ModelError::InputShape {
                actual: batch.len(),
            });
        }
        let tensor = Tensor::from_shape(&[self.batch, 1, FACE_SIDE, FACE_SIDE], batch)
            .map_err(tract_error("cannot build the input tensor"))?;
        let outputs = self
            .plan
            .run(tvec!(tensor.into_tvalue()))
            .map_err(tract_error("inference failed"))?;
        outputs
            .iter()
            .map(|o| {
                o.to_plain_array_view::<f32>()
                    .map(|view| view.iter().copied().collect())
                    .map_err(tract_error("output is not float32"))
            })
            .collect()
    }

    fn run_batch(&self, batch: Vec<f32>) -> Result<Vec<[f32; NUM_CLASSES]>, ModelError> {
        let outputs = self.all_outputs(&batch)?;
        let values = outputs
            .first()
            .ok_or_else(|| ModelError::Contract("the graph has no output".into()))?;
        if values.len() != self.batch * NUM_CLASSES {
            return Err(ModelError::OutputShape {
                expected: self.batch * NUM_CLASSES,
                actual: values.len(),
            });
        }
        Ok(values
            .chunks_exact(NUM_CLASSES)
            .map(|row| {
                let mut p = [0.0; NUM_CLASSES];
                p.copy_from_slice(row);
                p
            })
            .collect())
    }
}

/// tract's ONNX loader, with the kernel pool made safe first (see [`avoid_amx_overread`]).
/// Everything that builds a tract model here goes through this, or through
/// [`ExpressionModel::from_inference_model`], which makes the same call.
pub fn onnx() -> tract_onnx::Onnx {
    avoid_amx_overread();
    tract_onnx::onnx()
}

/// Takes tract's Intel AMX int8 kernels out of its kernel pool, unless `TRACT_CPU_ISA` says
/// otherwise.
///
/// Why: tract 0.23.9's `avx512amx_mmm_i32_16x16` loads a whole 1 KiB B tile
/// (`tileloaddt1`, 16 rows × 64 bytes) even for the last, shorter panel, so it reads past
/// the end of its packed buffer. Usually that is harmless heap; when the buffer ends at the
/// edge of a mapping the process dies with SIGSEGV. CI did (the kiosk end-to-end tests, exit
/// 101, signal 11); under gdb one run in four crashed, the faulting load starting 176 bytes
/// before the end of the mapping. The Raspberry Pi has no AMX, so this only concerns x86
/// hosts (trainer, tests, laptop demo). The AVX-512 VNNI / AVX2 kernels that take over give
/// the same integer accumulators, so no accuracy figure changes. The setting is read once,
/// before tract probes the CPU, hence the `Once`.
fn avoid_amx_overread() {
    // x86_64 only: tract panics on an x86 feature named on another architecture (aarch64).
    #[cfg(target_arch = "x86_64")]
    {
        static DISABLE_AMX: std::sync::Once = std::sync::Once::new();
        DISABLE_AMX.call_once(|| {
            let isa = &tract_onnx::tract_core::tract_linalg::knobs::TRACT_CPU_ISA;
            if std::env::var_os(isa.name).is_none() {
                isa.set(Some("-amx-int8".to_string()));
            }
        });
    }
}

/// The most elements any one tensor of a model may hold, per face of the batch: the largest
/// shipped model's largest tensor (vgg-lite, mirror-averaged: 2 × 32 × 48 × 48) is about
/// 150 thousand. A graph whose shapes say otherwise (a convolution padded by 2³², found by
/// fuzzing: tract then computes for minutes) is refused before it is optimised or run.
pub const MAX_TENSOR_ELEMENTS_PER_FACE: usize = 8 << 20;

fn optimised(model: InferenceModel, batch: usize) -> Result<TypedModel, ModelError> {
    avoid_amx_overread();
    let typed = model
        .with_input_fact(0, f32::fact([batch, 1, FACE_SIDE, FACE_SIDE]).into())
        .map_err(tract_error("model does not take one N×1×48×48 input"))?
        .into_typed()
        .map_err(tract_error("cannot type the model"))?;
    check_tensor_sizes(&typed, batch)?;
    typed
        .into_optimized()
        .map_err(tract_error("cannot optimise the model"))
}

/// Every tensor of known shape within [`MAX_TENSOR_ELEMENTS_PER_FACE`] per face (checked
/// arithmetic: a shape whose element count overflows is over the bound too).
fn check_tensor_sizes(model: &TypedModel, batch: usize) -> Result<(), ModelError> {
    let limit = MAX_TENSOR_ELEMENTS_PER_FACE.saturating_mul(batch.max(1));
    for node in model.nodes() {
        for output in &node.outputs {
            let Some(dims) = output.fact.shape.as_concrete() else {
                continue;
            };
            let elements = dims.iter().try_fold(1usize, |n, &d| n.checked_mul(d));
            if elements.is_none_or(|n| n > limit) {
                return Err(ModelError::Contract(format!(
                    "node {} ({}) makes a tensor of shape {dims:?}, over {limit} elements: \
                     not a face classifier",
                    node.name,
                    node.op.name()
                )));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Bad models (no outputs, NaN outputs, 5 classes) are refused at load by
    /// `tests/tests/model_pipeline.rs`, which can write ONNX graphs.
    fn shipped(name: &str) -> Vec<u8> {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../firmware/models")
            .join(name);
        std::fs::read(path).expect("the shipped models are in the repository")
    }

    #[test]
    fn the_shipped_model_passes_the_load_time_contract() {
        let model = ExpressionModel::from_bytes(&shipped("lenet5-int8.onnx"), 2).unwrap();
        assert_eq!(model.classify(&vec![0.3; 3 * INPUT_LEN]).unwrap().len(), 3);
    }
}
