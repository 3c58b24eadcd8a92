//! `models.json`, the list of shipped expression models, and the export's file naming.
//!
//! The trainer writes each model as `STEM-int8.onnx` (what the kiosk runs), `STEM-fp32.onnx`
//! (its float twin, what int8 is checked against) and `STEM.export.json` (what the export
//! measured); `firmware/models/models.json` lists the shipped ones with their measured
//! accuracy and speed. The firmware picks a model from it, the trainer's benches and the
//! tests read it: one reader here, so all three agree on its shape.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::estimate::Calibration;

/// File name of the manifest, in every models folder.
pub const MANIFEST_FILE: &str = "models.json";
/// Ending of an exported int8 model's file name.
pub const INT8_SUFFIX: &str = "-int8.onnx";
/// Ending of an exported model's float twin.
pub const FP32_SUFFIX: &str = "-fp32.onnx";
/// Ending of the export's record of what it measured.
pub const EXPORT_RECORD_SUFFIX: &str = ".export.json";

/// `models.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// Name of the model used when the config names none.
    pub default: String,
    pub models: Vec<ShippedModel>,
}

/// One shipped model, with what was measured of it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShippedModel {
    pub name: String,
    /// The int8 ONNX file, relative to the repository root (installed: its file name, in
    /// the manifest's folder).
    pub file: String,
    pub arch: String,
    pub parameters: u64,
    pub int8_bytes: u64,
    /// Accuracy on FER-2013 `PublicTest`, scored once after selection on validation.
    pub public_test_int8: f64,
    pub public_test_fp32: f64,
    /// tract, batch 1, one face, µs (model_speed bench, this machine); for a mirror-averaged
    /// model both passes.
    pub tract_us_per_face: f64,
    /// The graph averages each face with its mirror image (written in by `export --readout
    /// mirror-average`; twice the work a face). Absent: one pass.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub mirror_average: bool,
    /// The model's category confusions on faces it was not trained on, what the lesson
    /// estimate corrects for (`model-quant calibrate` writes it). Absent: lessons show the
    /// classified shares uncorrected.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub calibration: Option<Calibration>,
}

/// Why a manifest could not be read.
#[derive(Debug, thiserror::Error)]
#[error("{path}: {reason}")]
pub struct ManifestError {
    pub path: PathBuf,
    pub reason: String,
}

impl Manifest {
    /// The manifest in `dir`, checked: it parses and its default is listed.
    pub fn read(dir: &Path) -> Result<Self, ManifestError> {
        let path = dir.join(MANIFEST_FILE);
        let bad = |reason: String| ManifestError {
            path: path.clone(),
            reason,
        };
        let text = std::fs::read_to_string(&path).map_err(|e| bad(e.to_string()))?;
        let manifest: Manifest = serde_json::from_str(&text).map_err(|e| bad(e.to_string()))?;
        if manifest.named(&manifest.default).is_none() {
            return Err(bad(format!(
                "the default `{}` is not listed",
                manifest.default
            )));
        }
        Ok(manifest)
    }

    /// Writes the manifest into `dir` (pretty JSON; a temporary file renamed over the old).
    pub fn write(&self, dir: &Path) -> Result<(), ManifestError> {
        let path = dir.join(MANIFEST_FILE);
        let bad = |reason: String| ManifestError {
            path: path.clone(),
            reason,
        };
        let mut text = serde_json::to_string_pretty(self).map_err(|e| bad(e.to_string()))?;
        text.push('\n');
        let temporary = dir.join(format!(".{MANIFEST_FILE}.tmp"));
        std::fs::write(&temporary, text).map_err(|e| bad(e.to_string()))?;
        std::fs::rename(&temporary, &path).map_err(|e| bad(e.to_string()))
    }

    /// The model called `name`, if listed.
    pub fn named(&self, name: &str) -> Option<&ShippedModel> {
        self.models.iter().find(|m| m.name == name)
    }
}

/// `STEM-int8.onnx` → `STEM-fp32.onnx`; `None` when `int8` is not named like an export.
pub fn fp32_twin(int8: &Path) -> Option<PathBuf> {
    sibling(int8, FP32_SUFFIX)
}

/// `STEM-int8.onnx` → `STEM.export.json`; `None` when `int8` is not named like an export.
pub fn export_record(int8: &Path) -> Option<PathBuf> {
    sibling(int8, EXPORT_RECORD_SUFFIX)
}

/// `STEM` + `suffix`, the export's name for one of its files.
pub fn export_file(stem: &Path, suffix: &str) -> PathBuf {
    let mut name = stem.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

fn sibling(int8: &Path, suffix: &str) -> Option<PathBuf> {
    let stem = int8.file_name()?.to_str()?.strip_suffix(INT8_SUFFIX)?;
    Some(int8.with_file_name(format!("{stem}{suffix}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shipped_dir() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../firmware/models")
    }

    #[test]
    fn the_shipped_manifest_reads_and_names_its_files() {
        let manifest = Manifest::read(&shipped_dir()).unwrap();
        let default = manifest.named(&manifest.default).unwrap();
        assert!(default.file.ends_with(INT8_SUFFIX), "{}", default.file);
        assert_eq!(manifest.named("no-such-model"), None);
    }

    #[test]
    fn a_manifest_whose_default_is_not_listed_is_refused() {
        let dir = tempdir_with(r#"{"default": "gone", "models": []}"#);
        let error = Manifest::read(dir.path()).unwrap_err().to_string();
        assert!(
            error.contains("the default `gone` is not listed"),
            "{error}"
        );
        let dir = tempdir_with(r#"{"default": "gone", "models": [], "extra": 1}"#);
        let error = Manifest::read(dir.path()).unwrap_err().to_string();
        assert!(error.contains("unknown field `extra`"), "{error}");
    }

    #[test]
    fn twins_are_named_like_the_export_names_them() {
        let int8 = Path::new("firmware/models/vgg-int8.onnx");
        assert_eq!(
            fp32_twin(int8),
            Some(PathBuf::from("firmware/models/vgg-fp32.onnx"))
        );
        assert_eq!(
            export_record(int8),
            Some(PathBuf::from("firmware/models/vgg.export.json"))
        );
        assert_eq!(fp32_twin(Path::new("some/model.onnx")), None);
        assert_eq!(
            export_file(Path::new("out/vgg"), INT8_SUFFIX),
            PathBuf::from("out/vgg-int8.onnx")
        );
    }

    /// A folder holding `text` as its manifest, removed when dropped.
    fn tempdir_with(text: &str) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(MANIFEST_FILE), text).unwrap();
        dir
    }
}
