//! The offline model pipeline: FER-2013 → trained LeNet-5 / AlexNet-style nets → ONNX
//! (fp32) → int8 ONNX that tract runs with integer kernels → honest evaluation.
//!
//! One concept per module: [`data`] loads faces, [`augment`] perturbs them, [`nets`] defines
//! the networks, [`train`] fits them, [`plain`] lowers a trained net to plain layers,
//! [`onnx`] writes fp32 ONNX, [`quantize`] writes the int8 ONNX, [`export`] chains and checks
//! those, [`evaluate`] scores an ONNX model with [`metrics`]; [`backend`] picks burn's CPU
//! backend for training.

pub mod augment;
pub mod backend;
pub mod chart;
pub mod data;
pub mod distill;
pub mod evaluate;
pub mod export;
pub mod fsutil;
pub mod lessons;
pub mod metrics;
pub mod mixup;
pub mod nets;
pub mod onnx;
pub mod plain;
pub mod predict;
pub mod quantize;
pub mod recipe;
pub mod run;
pub mod train;
