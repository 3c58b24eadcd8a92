//! Helpers shared by the workspace-level tests: where the real data lives, and loud failures
//! when it is missing (a test that needs FER-2013 or OpenCV never passes without them).

pub mod kiosk_path;
pub mod mutate;
pub mod onnx_mutate;

use std::path::{Path, PathBuf};

/// The workspace root.
pub fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// `../shared/fer2013/fer2013.csv.gz` beside the checkout, or a panic that says how to get it.
pub fn fer2013() -> PathBuf {
    let path = std::env::var_os("EKSPRESI_FER2013")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace().join("../shared/fer2013/fer2013.csv.gz"));
    assert!(
        path.exists(),
        "FER-2013 not found at {} — this test needs the real data set: put fer2013.csv.gz \
         there (Kaggle layout) or point EKSPRESI_FER2013 at it",
        path.display()
    );
    path
}

/// The committed test photographs (see tests/data/images/PROVENANCE.md).
pub fn test_image(name: &str) -> PathBuf {
    workspace().join("tests/data/images").join(name)
}

/// A Python 3 that can `import cv2`, or a panic that says how to install it.
pub fn python_with_opencv() -> String {
    python_with("cv2", "pip install 'opencv-python-headless<5'")
}

/// A Python 3 that can `import onnxruntime`, or a panic that says how to install it.
pub fn python_with_onnxruntime() -> String {
    python_with("onnxruntime", "pip install onnxruntime")
}

/// `$EKSPRESI_PYTHON` (default `python3`) if it can import `module`; else a loud panic.
fn python_with(module: &str, install: &str) -> String {
    let python = std::env::var("EKSPRESI_PYTHON").unwrap_or_else(|_| "python3".into());
    let ok = std::process::Command::new(&python)
        .args(["-c", &format!("import {module}")])
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    assert!(
        ok,
        "this test needs Python's {module}: `{python} -c 'import {module}'` failed — \
         {install} (or set EKSPRESI_PYTHON)"
    );
    python
}

/// A fresh empty directory under the target dir for one test's files.
pub fn scratch_dir(name: &str) -> PathBuf {
    let dir = workspace().join("target/test-scratch").join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("cannot create scratch directory");
    dir
}
