//! The shipped expression models and how the kiosk picks one.
//!
//! `firmware/models/models.json` lists every shipped model (name, file, architecture, size,
//! measured accuracy and speed) and names the default, the int8 LeNet-5 of the design card.
//! The config's `"model"` is either a name from that list or a path to an ONNX file; without
//! one the kiosk takes the default. The manifest is looked for where the deploy kit installs
//! it (`/usr/share/ekspresi/models/`), beside the binary, then in the repository.

use std::path::{Path, PathBuf};

pub use ekspresi_common::manifest::{Manifest, ShippedModel, MANIFEST_FILE};

/// Why no model could be chosen.
#[derive(Debug, thiserror::Error)]
pub enum ModelsError {
    #[error("no {MANIFEST_FILE} found (tried {0})")]
    NoManifest(String),
    #[error(transparent)]
    BadManifest(#[from] ekspresi_common::manifest::ManifestError),
    #[error("no model named `{name}` in {path} (it lists {listed})")]
    UnknownName {
        name: String,
        path: PathBuf,
        listed: String,
    },
}

/// A manifest and the folder it was read from.
#[derive(Debug, Clone)]
pub struct Installed {
    pub manifest: Manifest,
    pub dir: PathBuf,
}

impl Installed {
    /// The first manifest found in the usual places.
    pub fn find() -> Result<Self, ModelsError> {
        let candidates = manifest_dirs();
        let dir = candidates
            .iter()
            .find(|dir| dir.join(MANIFEST_FILE).is_file())
            .ok_or_else(|| {
                let tried: Vec<String> = candidates
                    .iter()
                    .map(|d| d.join(MANIFEST_FILE).display().to_string())
                    .collect();
                ModelsError::NoManifest(tried.join(", "))
            })?;
        Self::read(dir)
    }

    /// The manifest in `dir`.
    pub fn read(dir: &Path) -> Result<Self, ModelsError> {
        Ok(Self {
            manifest: Manifest::read(dir)?,
            dir: dir.to_owned(),
        })
    }

    /// Where `model`'s file is: its file name in the manifest's folder.
    pub fn path_of(&self, model: &ShippedModel) -> PathBuf {
        let name = Path::new(&model.file)
            .file_name()
            .map_or_else(|| PathBuf::from(&model.file), PathBuf::from);
        self.dir.join(name)
    }

    /// The model called `name`.
    pub fn named(&self, name: &str) -> Result<&ShippedModel, ModelsError> {
        self.manifest
            .named(name)
            .ok_or_else(|| ModelsError::UnknownName {
                name: name.to_owned(),
                path: self.dir.join(MANIFEST_FILE),
                listed: self.names().join(", "),
            })
    }

    /// The ONNX file for the configured `model` (a name from this manifest, or a path), or
    /// this manifest's default.
    pub fn resolve(&self, configured: Option<&str>) -> Result<PathBuf, ModelsError> {
        if let Some(path) = configured.filter(|m| is_path(m)) {
            return Ok(PathBuf::from(path));
        }
        let name = configured.unwrap_or(&self.manifest.default);
        Ok(self.path_of(self.named(name)?))
    }

    pub fn names(&self) -> Vec<String> {
        self.manifest
            .models
            .iter()
            .map(|m| m.name.clone())
            .collect()
    }
}

/// Where the deploy kit installs the models and their manifest.
pub const INSTALL_DIR: &str = "/usr/share/ekspresi/models";

/// Folders that may hold `models.json`, in the order they are tried.
fn manifest_dirs() -> Vec<PathBuf> {
    let mut dirs = vec![PathBuf::from(INSTALL_DIR)];
    if let Some(dir) = std::env::current_exe()
        .ok()
        .as_deref()
        .and_then(Path::parent)
    {
        dirs.push(dir.join("models"));
    }
    dirs.push(Path::new(env!("CARGO_MANIFEST_DIR")).join("models"));
    dirs
}

/// The `PublicTest` accuracy (int8) the installed manifest states for the model file at
/// `path` (see [`listed_model`]).
pub fn stated_accuracy(path: &Path) -> Option<f64> {
    listed_model(path).map(|model| model.public_test_int8)
}

/// What the installed manifest states of the model file at `path` (accuracy, calibration):
/// the listed model with the same bytes (wherever the file sits, under whatever name);
/// `None` for any other model, which was not measured.
pub fn listed_model(path: &Path) -> Option<ShippedModel> {
    let size = std::fs::metadata(path).ok()?.len();
    let installed = Installed::find().ok()?;
    let bytes = std::fs::read(path).ok()?;
    let listed = installed.manifest.models.iter().find(|model| {
        model.int8_bytes == size
            && std::fs::read(installed.path_of(model)).is_ok_and(|shipped| shipped == bytes)
    })?;
    Some(listed.clone())
}

/// True when the config's `model` is a path rather than a name.
pub fn is_path(model: &str) -> bool {
    model.contains('/') || model.ends_with(".onnx")
}

/// The ONNX file for the configured `model` (a name from the manifest, or a path), or the
/// manifest's default.
pub fn resolve(configured: Option<&str>) -> Result<PathBuf, ModelsError> {
    if let Some(path) = configured.filter(|m| is_path(m)) {
        return Ok(PathBuf::from(path));
    }
    Installed::find()?.resolve(configured)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_paths_and_the_default_resolve() {
        let installed = Installed::find().unwrap();
        let default = resolve(None).unwrap();
        assert!(default.is_file(), "{}", default.display());
        let by_name = resolve(Some(&installed.manifest.default)).unwrap();
        assert_eq!(by_name, default);
        assert_eq!(
            resolve(Some("some/where/else.onnx")).unwrap(),
            PathBuf::from("some/where/else.onnx")
        );
        let unknown = resolve(Some("no-such-model")).unwrap_err().to_string();
        assert!(
            unknown.contains("no model named `no-such-model`"),
            "{unknown}"
        );
        assert!(unknown.contains(&installed.manifest.default), "{unknown}");
    }

    #[test]
    fn the_stated_accuracy_is_the_listed_models() {
        let installed = Installed::find().unwrap();
        for model in &installed.manifest.models {
            let path = installed.path_of(model);
            assert_eq!(stated_accuracy(&path), Some(model.public_test_int8));
        }
        assert_eq!(stated_accuracy(Path::new("elsewhere/mine-int8.onnx")), None);
        // A copy of a shipped model under another name is still the measured model; the
        // same name on other bytes is not.
        let elsewhere = tempfile::tempdir().unwrap();
        let default = installed.named(&installed.manifest.default).unwrap();
        let copied = elsewhere.path().join("renamed.onnx");
        std::fs::copy(installed.path_of(default), &copied).unwrap();
        assert_eq!(stated_accuracy(&copied), Some(default.public_test_int8));
        let impostor = elsewhere
            .path()
            .join(Path::new(&default.file).file_name().unwrap());
        let mut bytes = std::fs::read(installed.path_of(default)).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        std::fs::write(&impostor, bytes).unwrap();
        assert_eq!(stated_accuracy(&impostor), None);
    }
}
