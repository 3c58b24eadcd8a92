//! The shipped expression models, judged on FER-2013 `PublicTest` (never used for training or
//! selection): its accuracy is what the model card claims, int8 stays within one point of its
//! fp32 twin, and tract runs every layer of each int8 model with integer kernels.

use std::path::{Path, PathBuf};

use ekspresi_common::manifest;
use ekspresi_common::model::ExpressionModel;
use ekspresi_tests::{fer2013, workspace};
use firmware::models::Installed;
use model_quant::data::{self, Usage};
use model_quant::evaluate::evaluate;

fn models() -> std::path::PathBuf {
    workspace().join("firmware/models")
}

/// The PublicTest accuracy `MODEL_CARD.md` states for the listed model `name` (a line
/// ``**`NAME` PublicTest accuracy (int8): 0.xxxx**``).
fn card_accuracy(name: &str) -> f64 {
    let card = std::fs::read_to_string(models().join("MODEL_CARD.md")).expect("model card");
    let label = format!("`{name}` PublicTest accuracy (int8):");
    card.lines()
        .find_map(|l| l.split(&label).nth(1))
        .and_then(|v| {
            let number: String = v
                .trim()
                .chars()
                .take_while(|c| c.is_ascii_digit() || *c == '.')
                .collect();
            number.parse().ok()
        })
        .unwrap_or_else(|| panic!("the model card states `{label} <value>`"))
}

/// `models.json` as the firmware reads it.
fn manifest() -> Installed {
    Installed::read(&models()).expect("firmware/models/models.json reads")
}

/// Every shipped model's `PublicTest` accuracy, int8 and fp32, is what `models.json` and the
/// model card say, int8 within a point of fp32.
#[test]
fn every_listed_model_reaches_its_stated_accuracy_and_tracks_fp32() {
    let faces = data::load(&fer2013())
        .expect("FER-2013 loads")
        .with_usage(Usage::PublicTest);
    assert_eq!(faces.len(), 3589);
    let installed = manifest();
    for model in &installed.manifest.models {
        let int8_path = installed.path_of(model);
        let fp32_path = fp32_twin(&int8_path);
        let int8 = evaluate(&int8_path, &faces, 64).unwrap();
        let fp32 = evaluate(&fp32_path, &faces, 64).unwrap();
        let (int8, fp32) = (int8.report, fp32.report);
        eprintln!(
            "{}: PublicTest int8 {:.4}, fp32 {:.4}",
            model.name, int8.accuracy, fp32.accuracy
        );
        assert!(
            (int8.accuracy - model.public_test_int8).abs() < 0.0005
                && (fp32.accuracy - model.public_test_fp32).abs() < 0.0005,
            "models.json is out of date for {}",
            model.name
        );
        assert!((int8.accuracy - fp32.accuracy).abs() <= 0.01);
        // Every class is predicted sometimes: the model is not collapsing onto the big classes.
        assert!(int8
            .per_class
            .iter()
            .filter(|c| c.class != "disgust")
            .all(|c| c.recall > 0.1));
        assert!(
            (int8.accuracy - card_accuracy(&model.name)).abs() < 0.0005,
            "the model card is out of date for {}",
            model.name
        );
    }
}

/// The manifest's other facts: files exist, sizes and parameter counts are the export's,
/// the default is the design card's LeNet-5, and every model is within the Pi's budget.
#[test]
fn models_json_lists_files_that_exist_with_their_true_sizes() {
    let installed = manifest();
    assert!(!installed.manifest.models.is_empty());
    for model in &installed.manifest.models {
        assert!(workspace().join(&model.file).is_file(), "{}", model.file);
        let path = installed.path_of(model);
        let bytes = std::fs::metadata(&path).unwrap().len();
        assert_eq!(bytes, model.int8_bytes, "{}: int8_bytes", model.name);
        let export = export_json(&path);
        assert_eq!(export["int8_bytes"].as_u64(), Some(bytes), "{}", model.name);
        assert_eq!(
            export["parameters"].as_u64(),
            Some(model.parameters),
            "{}",
            model.name
        );
        assert_eq!(
            export["arch"].as_str(),
            Some(model.arch.as_str()),
            "{}",
            model.name
        );
        assert!(model.tract_us_per_face > 0.0);
        // Export records from before the readout existed are single-pass.
        let readout = export["readout"].as_str().unwrap_or("single");
        assert_eq!(
            model.mirror_average,
            readout == "mirror-average",
            "{}",
            model.name
        );
    }
    let default = installed.named(&installed.manifest.default).unwrap();
    assert!(default.arch.starts_with("lenet5"), "{}", default.arch);
    // The Pi budgets (issue 11): the LeNet-5 ≤ 0.5 MB as int8; any other model ≤ 3 MB and
    // ≤ 4× the LeNet-5's per-face latency in tract (as the model_speed bench measured it).
    assert!(default.int8_bytes <= 500_000, "{}", default.int8_bytes);
    for model in &installed.manifest.models {
        assert!(model.int8_bytes <= 3_000_000, "{}", model.name);
        assert!(
            model.tract_us_per_face <= 4.0 * default.tract_us_per_face,
            "{}: {} µs a face against the default's {}",
            model.name,
            model.tract_us_per_face,
            default.tract_us_per_face
        );
    }
    let same = |p: PathBuf| p.canonicalize().unwrap();
    assert_eq!(
        same(firmware::models::resolve(None).unwrap()),
        same(installed.path_of(default))
    );
}

/// A model listed as mirror-averaged really is: it gives a face and its mirror image the
/// same probabilities (real `PublicTest` faces), which a single-pass net does not.
#[test]
fn mirror_averaged_models_see_a_face_and_its_mirror_alike() {
    let faces = data::load(&fer2013())
        .expect("FER-2013 loads")
        .with_usage(Usage::PublicTest)
        .take_per_class(10);
    let plain = model_quant::export::prepared_input(&faces);
    let mirrored = model_quant::export::prepared_input(&faces.mirrored());
    let installed = manifest();
    for listed in &installed.manifest.models {
        let model = ExpressionModel::load(&installed.path_of(listed), faces.len()).unwrap();
        let (a, b) = (
            model.classify(&plain).unwrap(),
            model.classify(&mirrored).unwrap(),
        );
        let largest_gap = a
            .iter()
            .flatten()
            .zip(b.iter().flatten())
            .fold(0f32, |m, (x, y)| m.max((x - y).abs()));
        if listed.mirror_average {
            assert!(largest_gap < 1e-6, "{}: {largest_gap}", listed.name);
        } else {
            assert!(largest_gap > 1e-3, "{}: {largest_gap}", listed.name);
        }
        eprintln!("{}: largest face/mirror gap {largest_gap}", listed.name);
    }
}

/// `x-int8.onnx` → `x-fp32.onnx`.
fn fp32_twin(int8: &Path) -> PathBuf {
    manifest::fp32_twin(int8).expect("a listed model is named STEM-int8.onnx")
}

/// `x-int8.onnx` → what the export wrote to `x.export.json`.
fn export_json(int8: &Path) -> serde_json::Value {
    let path = manifest::export_record(int8).expect("a listed model is named STEM-int8.onnx");
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap()
}

/// Every listed int8 model runs on tract's integer kernels only: one integer matmul per
/// `QLinearConv` of the file (convolutions, and fully-connected layers written as
/// convolutions), nothing in front of the net (no `Pad`, no blur layer), no float conv left.
#[test]
fn tract_runs_every_int8_model_with_integer_kernels_only() {
    let installed = manifest();
    for listed in &installed.manifest.models {
        let path = installed.path_of(listed);
        let arch = model_quant::nets::Arch::by_name(&listed.arch).expect("a known arch");
        let layers = arch.convs.len() + arch.dense.len() + 1;
        assert_integer_kernels_only(&path, layers);
        eprintln!("{}: {layers} integer matmuls, no float kernel", listed.name);
    }
}

fn assert_integer_kernels_only(path: &Path, layers: usize) {
    let model = ExpressionModel::load(path, 1).unwrap();
    let graph = model.optimised_graph();
    let ops: Vec<(String, String)> = graph
        .nodes()
        .iter()
        .map(|n| (n.op().name().to_string(), format!("{:?}", n.op())))
        .collect();
    let matmuls: Vec<&String> = ops
        .iter()
        .filter(|(name, _)| name == "OptMatMul")
        .map(|(_, debug)| debug)
        .collect();
    let bytes = std::fs::read(path).unwrap();
    // A node's op_type is protobuf field 4: tag 0x22, length 11, then the name.
    let qlinear_convs = bytes
        .windows(13)
        .filter(|w| w == b"\x22\x0bQLinearConv")
        .count();
    assert_eq!(qlinear_convs, layers, "{}", path.display());
    assert!(
        !bytes.windows(5).any(|w| w == b"\x22\x03Pad"),
        "{} has a Pad node",
        path.display()
    );
    assert_eq!(matmuls.len(), qlinear_convs, "{ops:?}");
    for debug in &matmuls {
        assert!(
            debug.contains("mmm_i32"),
            "a matmul without an integer kernel: {debug}"
        );
        assert!(!debug.contains("mmm_f32"), "a float matmul kernel: {debug}");
        // tract's AMX int8 kernel reads past its buffer (common::model::avoid_amx_overread).
        assert!(!debug.contains("amx"), "the AMX kernel is in use: {debug}");
    }
    assert!(
        !ops.iter().any(|(name, _)| name.contains("Conv")),
        "a float conv remains: {ops:?}"
    );
}

/// An independent runtime agrees: onnxruntime (from PyPI) and tract on 500 real test faces,
/// for every listed int8 model. Both implement ONNX's QLinearConv rounding, so top-1 must
/// match on (nearly) every face.
#[test]
fn onnxruntime_agrees_with_tract_on_every_int8_model() {
    let faces = data::load(&fer2013())
        .expect("FER-2013 loads")
        .with_usage(Usage::PublicTest);
    let installed = manifest();
    for listed in &installed.manifest.models {
        let path = installed.path_of(listed);
        let ort = onnxruntime_probabilities(&path, 500);
        let model = ExpressionModel::load(&path, 1).unwrap();
        let mut agree = 0;
        let mut max_diff = 0f32;
        for (i, ort_p) in ort.iter().enumerate() {
            let face = ekspresi_common::GreyImage::new(48, 48, faces.face(i)).unwrap();
            let tract_p = model
                .classify(&ekspresi_common::prepare_face(face))
                .unwrap()[0];
            agree += usize::from(
                ekspresi_common::labels::most_probable_index(&tract_p)
                    == ekspresi_common::labels::most_probable_index(ort_p),
            );
            for (a, b) in tract_p.iter().zip(ort_p) {
                max_diff = max_diff.max((a - b).abs());
            }
        }
        // The two runtimes may round a requantized logit of the head to neighbouring steps of
        // its u8 grid; moving logits by one step δ moves a softmax probability by at most δ/2.
        let step = head_output_step(&path);
        eprintln!(
            "{}: tract vs onnxruntime on 500 faces: top-1 agreement {agree}/500, \
             max |Δp| {max_diff:.2e}, head output step δ = {step:.4}",
            listed.name
        );
        assert!(agree >= 495, "{}: top-1 agreement {agree}/500", listed.name);
        assert!(
            max_diff <= step / 2.0,
            "{}: max probability difference {max_diff} exceeds half a head output step ({step})",
            listed.name
        );
    }
}

/// onnxruntime's probabilities for the first `count` PublicTest faces (tests/parity/ort_classify.py).
fn onnxruntime_probabilities(model: &Path, count: usize) -> Vec<Vec<f32>> {
    let python = ekspresi_tests::python_with_onnxruntime();
    let output = std::process::Command::new(python)
        .arg(workspace().join("tests/parity/ort_classify.py"))
        .arg(model)
        .arg(fer2013())
        .arg(count.to_string())
        .output()
        .expect("run onnxruntime");
    assert!(
        output.status.success(),
        "onnxruntime failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let probabilities: Vec<Vec<f32>> = String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("JSON probabilities"))
        .collect();
    assert_eq!(probabilities.len(), count);
    probabilities
}

/// The head's int8 output step (its calibrated range over 255 levels), from the export report.
fn head_output_step(int8: &Path) -> f32 {
    let report = export_json(int8);
    let ranges = report["calibration_ranges"]
        .as_array()
        .expect("calibration ranges");
    let head = ranges
        .last()
        .and_then(|r| r.as_array())
        .expect("the head's range");
    let bound = |i: usize| head[i].as_f64().expect("a number") as f32;
    (bound(1) - bound(0)) / 255.0
}

/// Every listed model's calibration (what the lesson estimate corrects for) is its category
/// confusions and its probability scaling (with the resampled fits) on the validation split
/// of the run it names, seen through the kiosk's path — the `calibrate` tool's output for the
/// files as they are — and the kiosk can correct with it.
#[test]
fn every_calibration_is_its_models_confusions_on_its_validation_split() {
    use ekspresi_common::estimate::{Correction, ProbabilityCalibration, ScalingFit};
    use ekspresi_tests::kiosk_path::{category_pairs, kiosk_labelled_faces, CALIBRATION_SEED};
    use model_quant::lessons::category_confusion;
    use model_quant::run::RunDir;
    let training = data::load(&fer2013())
        .expect("FER-2013 loads")
        .with_usage(Usage::Training);
    let installed = manifest();
    let default = installed.named(&installed.manifest.default).unwrap();
    assert!(
        default.calibration.is_some(),
        "the default model is calibrated"
    );
    let out_of_date = |name: &str| {
        format!(
            "models.json's calibration of {name} is out of date: rerun \
             cargo run --release -p ekspresi-tests --bin calibrate"
        )
    };
    for model in &installed.manifest.models {
        let Some(calibration) = &model.calibration else {
            continue;
        };
        let run = RunDir::new(&workspace().join(&calibration.validation_of));
        let (_, validation) = run.load_config().unwrap().split_faces(&training);
        let faces = kiosk_labelled_faces(&installed.path_of(model), &validation).unwrap();
        assert_eq!(
            category_confusion(&category_pairs(&faces)),
            calibration.category_confusion,
            "{}",
            out_of_date(&model.name)
        );
        let stored = calibration
            .probabilities
            .as_ref()
            .expect("every calibration has the model's probability scaling");
        let fitted = ProbabilityCalibration::fit(&faces, CALIBRATION_SEED).unwrap();
        assert_eq!(stored.faces, fitted.faces, "{}", out_of_date(&model.name));
        assert_eq!(stored.resampled.len(), fitted.resampled.len());
        // The same fits, but for the last bits a CPU's float kernels may move.
        let close = |a: &ScalingFit, b: &ScalingFit| {
            let numbers = |f: &ScalingFit| {
                let mut all = vec![f.slope];
                all.extend(f.biases);
                all.extend(f.prior);
                all
            };
            numbers(a)
                .iter()
                .zip(numbers(b))
                .all(|(x, y)| (x - y).abs() < 1e-6)
        };
        let pairs = std::iter::once((&stored.fit, &fitted.fit))
            .chain(stored.resampled.iter().zip(&fitted.resampled));
        for (stored_fit, fitted_fit) in pairs {
            assert!(
                close(stored_fit, fitted_fit),
                "{}: {stored_fit:?} vs {fitted_fit:?}",
                out_of_date(&model.name)
            );
        }
        Correction::new(calibration).unwrap();
    }
}
