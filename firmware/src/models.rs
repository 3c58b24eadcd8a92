//! Where the kiosk finds its expression model when the config names none: the installed
//! location on the Pi, beside the binary, or the repository's `firmware/models/`.

use std::path::{Path, PathBuf};

/// File name of the default (int8 LeNet-5) model.
pub const DEFAULT_MODEL_FILE: &str = "lenet5-int8.onnx";

/// Candidate locations, in the order they are tried.
pub fn default_model_candidates() -> Vec<PathBuf> {
    let mut candidates = vec![PathBuf::from("/usr/share/ekspresi/models").join(DEFAULT_MODEL_FILE)];
    if let Some(dir) = std::env::current_exe()
        .ok()
        .as_deref()
        .and_then(Path::parent)
    {
        candidates.push(dir.join("models").join(DEFAULT_MODEL_FILE));
    }
    candidates.push(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("models")
            .join(DEFAULT_MODEL_FILE),
    );
    candidates
}

/// The configured model, or the first default candidate that exists.
pub fn resolve(configured: Option<&Path>) -> Result<PathBuf, String> {
    if let Some(path) = configured {
        return Ok(path.to_owned());
    }
    let candidates = default_model_candidates();
    candidates
        .iter()
        .find(|p| p.exists())
        .cloned()
        .ok_or_else(|| {
            let tried: Vec<String> = candidates.iter().map(|p| p.display().to_string()).collect();
            format!("no expression model found (tried {})", tried.join(", "))
        })
}
