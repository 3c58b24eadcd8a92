//! The offline model pipeline on real FER-2013 faces: a small real training run (loss falls),
//! export whose tract output matches burn's forward pass, int8 quantization that keeps top-1
//! agreement, and clean errors on malformed data. The full training runs outside CI.

use ekspresi_tests::{fer2013, scratch_dir};
use model_quant::augment::AugmentConfig;
use model_quant::backend::Backend;
use model_quant::data::{self, Usage};
use model_quant::distill::Distill;
use model_quant::export::{self, prepared_input};
use model_quant::nets::Arch;
use model_quant::onnx::Readout;
use model_quant::quantize::WeightGranularity;
use model_quant::recipe::{OptimizerKind, Schedule, SplitConfig, TrainConfig};
use model_quant::run::{self, RunDir};
use model_quant::{predict, train};

#[test]
fn small_training_learns_and_exports_to_matching_fp32_and_int8() {
    let faces = data::load(&fer2013()).expect("FER-2013 loads");
    let config = TrainConfig {
        // The shipped architecture.
        arch: Arch::lenet5_wide(),
        epochs: 3,
        batch_size: 32,
        learning_rate: 2e-3,
        min_learning_rate: 1e-4,
        weight_decay: None,
        label_smoothing: 0.0,
        class_weights: false,
        augment: Some(AugmentConfig::default()),
        patience: None,
        seed: 3,
        split: SplitConfig {
            validation_fraction: 0.2,
            limit_per_class: Some(100),
        },
        init_from: None,
        optimizer: OptimizerKind::Adam,
        schedule: Schedule::Cosine,
        distill: None,
        mixup: None,
    };
    let (train_set, validation_set) = config.split_faces(&faces.with_usage(Usage::Training));
    let dir = scratch_dir("model_pipeline");
    let run = RunDir::new(&dir.join("run"));

    // Every run of this test trains on the same sample, on flex.
    let train_on_sample = |config: &TrainConfig, run: &RunDir, resume: bool| {
        train::train(
            config,
            &train_set,
            &validation_set,
            run,
            resume,
            Backend::Flex,
        )
    };
    let untrained = model_quant::nets::Net::new(&config.arch, &burn::tensor::Device::flex());
    let (loss_before, _) = predict::evaluate(&untrained, &train_set);
    let log = train_on_sample(&config, &run, false).expect("training runs");
    assert_eq!(log.len(), 3);
    let trained = run::load_model(&config.arch, &run.best_model()).expect("best model reloads");
    let (loss_after, _) = predict::evaluate(&trained, &train_set);
    assert!(
        loss_after < loss_before,
        "training loss did not fall: {loss_before} → {loss_after}"
    );
    assert!(dir.join("run/training.png").exists() && dir.join("run/log.jsonl").exists());

    // Resuming a finished run trains nothing more and keeps the log.
    let resumed = train_on_sample(&config, &run, true).expect("resume");
    assert_eq!(resumed.len(), 3);
    // Starting afresh in it is refused: a forgotten --resume must not wipe a run.
    let overwrite = train_on_sample(&config, &run, false)
        .unwrap_err()
        .to_string();
    assert!(
        overwrite.contains("already holds a run (3 epochs"),
        "{overwrite}"
    );
    assert_eq!(run.load_log().unwrap().len(), 3, "the log is kept");

    // Fine-tuning starts from the run's best weights: at learning rate 0 the new run's one
    // epoch validates like its source (only batch-norm statistics move), far above chance.
    let best = log
        .iter()
        .map(|e| e.validation_accuracy)
        .fold(f64::MIN, f64::max);
    let frozen = TrainConfig {
        epochs: 1,
        learning_rate: 0.0,
        min_learning_rate: 0.0,
        augment: None,
        init_from: Some(dir.join("run")),
        ..config.clone()
    };
    let tuned = train_on_sample(&frozen, &RunDir::new(&dir.join("tuned")), false)
        .expect("fine-tuning from the run");
    let tuned_accuracy = tuned[0].validation_accuracy;
    assert!(
        (tuned_accuracy - best).abs() < 0.03,
        "fine-tune at lr 0 validates {tuned_accuracy}, its source {best}"
    );
    let other_split = TrainConfig {
        seed: 4,
        ..frozen.clone()
    };
    let refused = train_on_sample(&other_split, &RunDir::new(&dir.join("refused")), false)
        .unwrap_err()
        .to_string();
    assert!(refused.contains("another split or seed"), "{refused}");

    // A student distilled from the run, with mixup and crop training (it reads the centre
    // 40×40 of each face), learns on the same sample; resuming it without mixup (or from
    // other teachers) is refused: one run, one recipe.
    let mut cropped = config.arch.clone();
    cropped.set_crop(40).expect("a valid crop");
    let student = TrainConfig {
        arch: cropped,
        epochs: 2,
        distill: Some(Distill {
            teachers: vec![dir.join("run")],
            temperature: 4.0,
            weight: 0.7,
        }),
        mixup: Some(0.2),
        ..config.clone()
    };
    let student_run = RunDir::new(&dir.join("student"));
    train_on_sample(&student, &student_run, false).expect("distillation with mixup");
    let taught = run::load_model(&student.arch, &student_run.best_model()).expect("student");
    let (student_loss, _) = predict::evaluate(&taught, &train_set);
    assert!(
        student_loss < loss_before,
        "the student did not learn: {loss_before} → {student_loss}"
    );
    for changed in [
        TrainConfig {
            mixup: None,
            epochs: 3,
            ..student.clone()
        },
        TrainConfig {
            distill: None,
            epochs: 3,
            ..student.clone()
        },
    ] {
        let refused = train_on_sample(&changed, &student_run, true)
            .unwrap_err()
            .to_string();
        assert!(refused.contains("pass the same"), "{refused}");
    }
    // The cropping student exports: its graphs slice the centre from the contract's 48×48
    // input and match burn's forward pass (fp32) and top-1 (int8), single and mirrored.
    let check = faces.with_usage(Usage::PublicTest).take_per_class(30);
    for readout in [Readout::Single, Readout::MirrorAverage] {
        let report = export::export(
            &student_run,
            &dir.join(format!("student-{readout:?}")),
            &train_set,
            &check,
            WeightGranularity::PerTensor,
            readout,
        )
        .expect("a cropping net exports");
        assert!(
            report.fp32_max_abs_diff <= 1e-4,
            "{}",
            report.fp32_max_abs_diff
        );
        assert!(
            report.int8_top1_agreement >= 0.95,
            "{}",
            report.int8_top1_agreement
        );
    }

    let check = faces.with_usage(Usage::PublicTest).take_per_class(30);
    let report = export::export(
        &run,
        &dir.join("small"),
        &train_set,
        &check,
        WeightGranularity::PerTensor,
        Readout::Single,
    )
    .expect("export and quantization");
    assert!(
        report.fp32_max_abs_diff <= 1e-4,
        "tract vs burn: {}",
        report.fp32_max_abs_diff
    );
    assert!(
        report.int8_top1_agreement >= 0.95,
        "int8 vs fp32 top-1: {}",
        report.int8_top1_agreement
    );
    assert!(report.int8_bytes * 3 < report.fp32_bytes);

    // The exported int8 model runs through the same runner the firmware uses.
    let model = ekspresi_common::model::ExpressionModel::load(&report.int8_model, 8).unwrap();
    let probabilities = model.classify(&prepared_input(&check)).unwrap();
    assert_eq!(probabilities.len(), check.len());
    assert!(probabilities
        .iter()
        .all(|p| (p.iter().sum::<f32>() - 1.0).abs() < 1e-3));

    assert_mirror_average_export(&run, &dir, &train_set, &check, &probabilities);
}

/// The same run exported with the mirror average written into the graph: the fp32 graph
/// matches burn's averaged forward pass (checked inside `export`), and the int8 graph gives
/// each face the mean of the single-pass int8 model on the face and on its mirror image
/// (the same integer kernels, so equal to float rounding), the same for a face as for its
/// mirror.
fn assert_mirror_average_export(
    run: &RunDir,
    dir: &std::path::Path,
    train_set: &data::Faces,
    check: &data::Faces,
    single: &[[f32; 7]],
) {
    use ekspresi_common::model::ExpressionModel;
    let report = export::export(
        run,
        &dir.join("mirrored"),
        train_set,
        check,
        WeightGranularity::PerTensor,
        Readout::MirrorAverage,
    )
    .expect("mirror-average export");
    assert!(
        report.fp32_max_abs_diff <= 1e-4,
        "{}",
        report.fp32_max_abs_diff
    );
    let averaged = ExpressionModel::load(&report.int8_model, 8).unwrap();
    let of_faces = averaged.classify(&prepared_input(check)).unwrap();
    let of_mirrors = averaged
        .classify(&prepared_input(&check.mirrored()))
        .unwrap();
    let single_model = ExpressionModel::load(&dir.join("small-int8.onnx"), 8).unwrap();
    let single_of_mirrors = single_model
        .classify(&prepared_input(&check.mirrored()))
        .unwrap();
    let mut worst = 0f32;
    for i in 0..check.len() {
        for class in 0..7 {
            let mean = 0.5 * (single[i][class] + single_of_mirrors[i][class]);
            worst = worst
                .max((of_faces[i][class] - mean).abs())
                .max((of_mirrors[i][class] - of_faces[i][class]).abs());
        }
    }
    assert!(
        worst < 1e-5,
        "mirror-average graph vs two single passes: {worst}"
    );
}

#[test]
fn malformed_data_gives_a_clean_error_naming_file_and_line() {
    let dir = scratch_dir("malformed_csv");
    let path = dir.join("broken.csv");
    std::fs::write(&path, "emotion,pixels,Usage\n3,1 2 3,Training\n").unwrap();
    let message = data::load(&path).unwrap_err().to_string();
    assert!(message.contains("broken.csv:2"), "{message}");
    assert!(message.contains("2304"), "{message}");

    let truncated = ekspresi_common::model::ExpressionModel::from_bytes(&[8, 1, 18, 3], 1);
    assert!(truncated.is_err(), "a truncated model must not load");
}

/// A one-layer graph: a 48×48 convolution with `classes` outputs and the given weight, then
/// softmax; `output` names the graph's output (`None`: the graph has none; a name no node
/// produces makes a broken graph).
fn one_layer_model(classes: usize, weight: f32, output: Option<&str>) -> Vec<u8> {
    use ekspresi_common::contract::{INPUT_NAME, OUTPUT_NAME};
    use model_quant::onnx::{Attr, GraphBuilder};
    let mut g = GraphBuilder::new("bad");
    let w = g.f32s("w", &[classes, 1, 48, 48], &vec![weight; classes * 48 * 48]);
    let b = g.f32s("b", &[classes], &vec![0.0; classes]);
    let conv = g.node("Conv", &[INPUT_NAME, &w, &b], "conv", vec![]);
    let flat = g.node("Flatten", &[&conv], "flat", vec![("axis", Attr::Int(1))]);
    g.node(
        "Softmax",
        &[&flat],
        OUTPUT_NAME,
        vec![("axis", Attr::Int(1))],
    );
    let outputs: Vec<(&str, Vec<usize>)> = output
        .map(|name| (name, vec![classes]))
        .into_iter()
        .collect();
    model_quant::onnx::to_bytes(&g.finish(&outputs, "a test model"))
}

/// The model contract is checked when a model loads, not at the first face: a graph with
/// no output, an output naming nothing, NaN probabilities or 5 classes is refused with a
/// clear error.
#[test]
fn models_that_break_the_contract_are_refused_at_load() {
    use ekspresi_common::contract::OUTPUT_NAME;
    use ekspresi_common::model::ExpressionModel;
    let load = |bytes: Vec<u8>| match ExpressionModel::from_bytes(&bytes, 1) {
        Ok(_) => None,
        Err(error) => Some(error.to_string()),
    };
    assert_eq!(
        load(one_layer_model(7, 0.001, Some(OUTPUT_NAME))),
        None,
        "a valid 7-class model"
    );
    let nan = load(one_layer_model(7, f32::NAN, Some(OUTPUT_NAME))).expect("NaN refused");
    assert!(nan.contains("not finite probabilities"), "{nan}");
    let five = load(one_layer_model(5, 0.001, Some(OUTPUT_NAME))).expect("5 classes refused");
    assert!(five.contains("expected 7"), "{five}");
    let none = load(one_layer_model(7, 0.001, None)).expect("no output refused");
    assert!(none.contains("output"), "{none}");
    // Found by fuzzing (tests/tests/fuzz.rs): an output naming no value made tract panic.
    let dangling =
        load(one_layer_model(7, 0.001, Some("nowhere"))).expect("dangling output refused");
    assert!(dangling.contains("not a loadable ONNX model"), "{dangling}");
}
