//! `model-quant`: the command-line front of the offline model pipeline.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use clap::{Args, Parser, Subcommand};
use model_quant::augment::AugmentConfig;
use model_quant::backend::Backend;
use model_quant::data::{self, Usage};
use model_quant::nets::Arch;
use model_quant::onnx::Readout;
use model_quant::quantize::WeightGranularity;
use model_quant::recipe::{OptimizerKind, Schedule, SplitConfig, TrainConfig};
use model_quant::run::{self, RunDir};
use model_quant::{evaluate, export};
use model_quant::{predict, train};

#[derive(Parser)]
#[command(
    version,
    about = "Train, export, quantize and evaluate the Ekspresi expression models"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Train a network on FER-2013 `Training`, selecting on a validation split carved from it.
    Train(TrainArgs),
    /// Export a run's best model to fp32 and int8 ONNX, with parity checks.
    Export(ExportArgs),
    /// Score an ONNX model on a FER-2013 split.
    Evaluate(EvaluateArgs),
    /// A run's best model on its validation split, alone and averaged with its mirror image.
    Validate(ValidateArgs),
    /// Draw the confusion matrix of a saved `evaluate --json` output (no re-scoring, so no
    /// extra look at the test split).
    Confusion(ConfusionArgs),
}

#[derive(Args)]
struct ConfusionArgs {
    /// The JSON `evaluate --json` printed.
    #[arg(long)]
    evaluation: PathBuf,
    /// PNG to write.
    #[arg(long)]
    out: PathBuf,
    /// Chart title [default: the model and its accuracy].
    #[arg(long)]
    title: Option<String>,
}

#[derive(Args)]
struct ExportArgs {
    /// Run directory written by `train`.
    #[arg(long)]
    run: PathBuf,
    /// FER-2013 data: calibration faces come from `Training`, check faces from `PublicTest`.
    #[arg(long)]
    data: PathBuf,
    /// Output stem: writes STEM-fp32.onnx, STEM-int8.onnx and STEM.export.json.
    #[arg(long)]
    out: PathBuf,
    /// How int8 weight scales are shared.
    #[arg(long, value_enum, default_value = "per-tensor")]
    granularity: WeightGranularity,
    /// How the graphs read a face: one pass, or averaged with its mirror image (2× the work).
    #[arg(long, value_enum, default_value = "single")]
    readout: Readout,
    /// Training faces (random, seeded) used to calibrate activation ranges.
    #[arg(long, default_value_t = 1000)]
    calibration_faces: usize,
    /// Faces on which tract is compared with burn (fp32) and fp32 with int8.
    #[arg(long, default_value_t = 500)]
    check_faces: usize,
}

#[derive(Args)]
struct ValidateArgs {
    /// FER-2013 data the run was trained on.
    #[arg(long)]
    data: PathBuf,
    /// Run directory written by `train` (its config.json says how validation was carved).
    #[arg(long)]
    run: PathBuf,
}

#[derive(Args)]
struct EvaluateArgs {
    /// ONNX model following the contract (input N×1×48×48, output N×7).
    #[arg(long)]
    model: PathBuf,
    /// FER-2013 CSV (.csv or .csv.gz) or folder layout.
    #[arg(long)]
    data: PathBuf,
    /// Which split to score (Training, PublicTest).
    #[arg(long, default_value = "PublicTest")]
    usage: String,
    /// Score the validation split of this run folder instead (carved from `Training` as its
    /// config.json says): for choices about an exported model, such as int8 granularity,
    /// without looking at `PublicTest`.
    #[arg(long, value_name = "RUN", conflicts_with = "usage")]
    validation_of: Option<PathBuf>,
    /// Use only the first N faces of each class.
    #[arg(long)]
    limit_per_class: Option<usize>,
    /// Faces per tract run (the score does not depend on it).
    #[arg(long, default_value_t = 64)]
    batch: usize,
    /// Print one JSON object instead of a table.
    #[arg(long)]
    json: bool,
    /// Also draw the confusion matrix into this PNG.
    #[arg(long)]
    confusion_png: Option<PathBuf>,
}

#[derive(Args)]
struct TrainArgs {
    /// FER-2013 CSV (.csv or .csv.gz) or folder layout (train/<class>/*.jpg).
    #[arg(long)]
    data: PathBuf,
    /// Run directory: config, log, chart, checkpoints, best model.
    #[arg(long)]
    run: PathBuf,
    /// lenet5-wide (shipped), lenet5 (narrower), lenet5-classic (LeCun's 6/16/120),
    /// alexnet (the paper's second net), vgg (the stronger Pi-budget model) or vgg-lite
    /// (cheap enough to run mirror-averaged).
    #[arg(long, default_value = "lenet5-wide")]
    arch: String,
    /// Epochs of the cosine schedule (with --resume: the new total).
    #[arg(long, default_value_t = 50)]
    epochs: usize,
    /// Faces per optimiser step.
    #[arg(long, default_value_t = 64)]
    batch_size: usize,
    /// Adam's learning rate at the start of the cosine schedule.
    #[arg(long, default_value_t = 1e-3)]
    learning_rate: f64,
    /// Learning rate at the end of the cosine schedule.
    #[arg(long, default_value_t = 1e-5)]
    min_learning_rate: f64,
    /// L2 weight decay added to Adam (off by default).
    #[arg(long)]
    weight_decay: Option<f32>,
    /// Label smoothing of the cross-entropy loss (0: none).
    #[arg(long, default_value_t = 0.0)]
    label_smoothing: f32,
    /// Weight the loss by inverse class frequency.
    #[arg(long)]
    class_weights: bool,
    /// Train without augmentation.
    #[arg(long)]
    no_augment: bool,
    /// Largest random shift, as a fraction of the side (default 0.1).
    #[arg(long)]
    max_shift: Option<f32>,
    /// Largest random rotation in degrees (default 10).
    #[arg(long)]
    max_rotation_deg: Option<f32>,
    /// Override the architecture's dropout probability.
    #[arg(long)]
    dropout: Option<f64>,
    /// Train without batch-norm.
    #[arg(long)]
    no_batch_norm: bool,
    /// Fraction of each class of `Training` held out for validation.
    #[arg(long, default_value_t = 0.1)]
    validation_fraction: f64,
    /// Use only the first N faces of each class (small runs, CI).
    #[arg(long)]
    limit_per_class: Option<usize>,
    /// Stop after this many epochs without validation improvement.
    #[arg(long)]
    patience: Option<usize>,
    /// Seed of the validation split, the shuffling and the augmentation.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Continue from the run's last checkpoint.
    #[arg(long)]
    resume: bool,
    /// Start from another run's best weights (same layers, split and seed) with a fresh
    /// optimiser and this run's own schedule: fine-tuning, e.g. with weaker augmentation.
    #[arg(long, conflicts_with = "resume")]
    init_from: Option<PathBuf>,
    /// Optimiser: adam (the paper's) or sgd-nesterov (SGD with Nesterov momentum).
    #[arg(long, value_enum, default_value = "adam")]
    optimizer: OptimizerArg,
    /// Momentum of sgd-nesterov.
    #[arg(long, default_value_t = 0.9)]
    momentum: f64,
    /// Learning-rate schedule: cosine over the run, or plateau (×--plateau-factor after
    /// --plateau-patience epochs without a better validation accuracy).
    #[arg(long, value_enum, default_value = "cosine")]
    schedule: ScheduleArg,
    /// Factor of each plateau cut.
    #[arg(long, default_value_t = 0.75)]
    plateau_factor: f64,
    /// Epochs without a better validation accuracy before a plateau cut.
    #[arg(long, default_value_t = 5)]
    plateau_patience: usize,
    /// Probability of random erasing (a rectangle of 2–33 % of the face filled with noise).
    #[arg(long, default_value_t = 0.0)]
    erase_probability: f32,
    /// burn backend to train on (libtorch needs a build with `--features tch`).
    #[arg(long, value_enum, default_value = "flex")]
    backend: Backend,
    /// Distil from this run's best weights (repeat for an ensemble; each must hold out the
    /// same validation faces): the student also learns the teachers' softened probabilities.
    #[arg(long = "teacher")]
    teachers: Vec<PathBuf>,
    /// Temperature softening the teachers' probabilities (with --teacher).
    #[arg(long, default_value_t = 4.0)]
    distill_temperature: f32,
    /// Weight of the teachers' term against the labels' (with --teacher).
    #[arg(long, default_value_t = 0.7)]
    distill_weight: f32,
    /// Mixup: blend each batch with a shuffled copy of itself, λ ~ Beta(α, α) (0.2–0.4 usual;
    /// omit for none).
    #[arg(long, value_name = "ALPHA")]
    mixup: Option<f32>,
    /// Crop training: the net reads the centre SIDE×SIDE of the 48×48 face (an even side,
    /// 32–46; the exported model still takes the whole face) and trains on random windows.
    #[arg(long, value_name = "SIDE")]
    crop: Option<usize>,
}

fn main() -> Result<()> {
    // Our own progress at info; dependencies (tract's kernel probes, burn) only warn.
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "warn,model_quant=info".into()),
        )
        .with_writer(std::io::stderr)
        // Colour only on a terminal: the journal (the kiosk's service) and files get plain text.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    match Cli::parse().command {
        Command::Train(args) => run_train(args),
        Command::Export(args) => run_export(args),
        Command::Evaluate(args) => run_evaluate(args),
        Command::Validate(args) => run_validate(args),
        Command::Confusion(args) => run_confusion(args),
    }
}

fn run_export(args: ExportArgs) -> Result<()> {
    let faces = data::load(&args.data)?;
    let calibration = export::sample(
        &faces.with_usage(Usage::Training),
        args.calibration_faces,
        7,
    );
    let check = export::sample(&faces.with_usage(Usage::PublicTest), args.check_faces, 11);
    let report = export::export(
        &RunDir::new(&args.run),
        &args.out,
        &calibration,
        &check,
        args.granularity,
        args.readout,
    )?;
    println!("{}", serde_json::to_string_pretty(&report)?);
    Ok(())
}

fn run_validate(args: ValidateArgs) -> Result<()> {
    let run = RunDir::new(&args.run);
    let config = run.load_config()?;
    let training = data::load(&args.data)?.with_usage(Usage::Training);
    let (_, validation) = config.split_faces(&training);
    let model = run::load_model(&config.arch, &run.best_model())?;
    let plain = predict::predict(&model, &validation);
    let mirrored = predict::predict(&model, &validation.mirrored());
    let averaged = predict::average(&plain, &mirrored);
    let accuracy = |probabilities: &[f32]| predict::accuracy(probabilities, &validation);
    let report = serde_json::json!({
        "run": args.run,
        "validation_faces": validation.len(),
        "accuracy": accuracy(&plain),
        "accuracy_mirrored": accuracy(&mirrored),
        "accuracy_with_mirror_average": accuracy(&averaged),
        "top1_agreement_with_mirror": model_quant::export::top1_agreement(&plain, &mirrored),
    });
    println!("{}", serde_json::to_string_pretty(&report)?);
    Ok(())
}

fn run_confusion(args: ConfusionArgs) -> Result<()> {
    #[derive(serde::Deserialize)]
    struct Saved {
        model: String,
        n: usize,
        accuracy: f64,
        confusion: Vec<Vec<usize>>,
    }
    let text = std::fs::read_to_string(&args.evaluation)
        .with_context(|| format!("cannot read {}", args.evaluation.display()))?;
    let saved: Saved = serde_json::from_str(&text).with_context(|| {
        format!(
            "{} is not `evaluate --json` output",
            args.evaluation.display()
        )
    })?;
    let title = args.title.unwrap_or_else(|| {
        let model = Path::new(&saved.model)
            .file_name()
            .map_or(saved.model.clone(), |n| n.to_string_lossy().into_owned());
        format!(
            "{model}: accuracy {:.4} ({} faces)",
            saved.accuracy, saved.n
        )
    });
    model_quant::chart::confusion_chart(&saved.confusion, &title, &args.out)
}

fn run_evaluate(args: EvaluateArgs) -> Result<()> {
    let (mut faces, split) = faces_to_score(&args)?;
    if let Some(n) = args.limit_per_class {
        faces = faces.take_per_class(n);
    }
    if faces.is_empty() {
        bail!("{} has no {split} faces", args.data.display());
    }
    let evaluation = evaluate::evaluate(&args.model, &faces, args.batch.max(1))?;
    if let Some(png) = &args.confusion_png {
        let title = format!(
            "{} on {split}: accuracy {:.4} ({} faces)",
            args.model.file_name().map_or_else(
                || args.model.display().to_string(),
                |n| n.to_string_lossy().into_owned()
            ),
            evaluation.report.accuracy,
            evaluation.report.n
        );
        model_quant::chart::confusion_chart(&evaluation.report.confusion, &title, png)?;
    }
    if args.json {
        println!("{}", serde_json::to_string(&evaluation)?);
    } else {
        print_table(&evaluation);
    }
    Ok(())
}

/// The faces `evaluate` scores, and the split's name: a `--usage` of the file, or a run's
/// validation split.
fn faces_to_score(args: &EvaluateArgs) -> Result<(data::Faces, String)> {
    let faces = data::load(&args.data)?;
    match &args.validation_of {
        Some(run_dir) => {
            let config = RunDir::new(run_dir).load_config()?;
            let (_, validation) = config.split_faces(&faces.with_usage(Usage::Training));
            Ok((
                validation,
                format!("the validation split of {}", run_dir.display()),
            ))
        }
        None => {
            let usage: Usage = args.usage.parse().map_err(anyhow::Error::msg)?;
            Ok((faces.with_usage(usage), format!("{usage:?}")))
        }
    }
}

fn print_table(evaluation: &evaluate::Evaluation) {
    let report = &evaluation.report;
    println!(
        "{}: {} faces, accuracy {:.4}",
        evaluation.model, report.n, report.accuracy
    );
    println!(
        "{:<9} {:>9} {:>7} {:>6} {:>7}",
        "class", "precision", "recall", "f1", "support"
    );
    for class in &report.per_class {
        println!(
            "{:<9} {:>9.3} {:>7.3} {:>6.3} {:>7}",
            class.class, class.precision, class.recall, class.f1, class.support
        );
    }
    println!("confusion (rows true, columns predicted):");
    for row in &report.confusion {
        println!(
            "  {}",
            row.iter().map(|c| format!("{c:>5}")).collect::<String>()
        );
    }
    println!(
        "tract latency: {:.1} µs/face at batch {}",
        evaluation.latency_us_per_face, evaluation.batch
    );
}

/// The augmentation of `args`: none, the paper's, or the paper's with a shift or rotation
/// of the user's (checked, since a shift of a whole side or more leaves nothing of the face).
fn augment_config(args: &TrainArgs) -> Result<Option<AugmentConfig>> {
    if args.no_augment {
        if args.max_shift.is_some() || args.max_rotation_deg.is_some() {
            bail!("--no-augment conflicts with --max-shift / --max-rotation-deg");
        }
        return Ok(None);
    }
    let mut augment = AugmentConfig::default();
    if !(0.0..=1.0).contains(&args.erase_probability) {
        bail!(
            "--erase-probability must be in [0, 1], got {}",
            args.erase_probability
        );
    }
    augment.erase_probability = args.erase_probability;
    if let Some(shift) = args.max_shift {
        if !(0.0..0.5).contains(&shift) {
            bail!("--max-shift must be in [0, 0.5), got {shift}");
        }
        augment.max_shift = shift;
    }
    if let Some(degrees) = args.max_rotation_deg {
        if !(0.0..=90.0).contains(&degrees) {
            bail!("--max-rotation-deg must be in [0, 90], got {degrees}");
        }
        augment.max_rotation_deg = degrees;
    }
    Ok(Some(augment))
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum OptimizerArg {
    Adam,
    SgdNesterov,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum ScheduleArg {
    Cosine,
    Plateau,
}

/// The optimiser and schedule of `args`, checked.
fn optimizer_and_schedule(args: &TrainArgs) -> Result<(OptimizerKind, Schedule)> {
    let optimizer = match args.optimizer {
        OptimizerArg::Adam => OptimizerKind::Adam,
        OptimizerArg::SgdNesterov => {
            if !(0.0..1.0).contains(&args.momentum) {
                bail!("--momentum must be in [0, 1), got {}", args.momentum);
            }
            OptimizerKind::SgdNesterov {
                momentum: args.momentum,
            }
        }
    };
    let schedule = match args.schedule {
        ScheduleArg::Cosine => Schedule::Cosine,
        ScheduleArg::Plateau => {
            if !(args.plateau_factor > 0.0 && args.plateau_factor < 1.0) {
                bail!(
                    "--plateau-factor must be in (0, 1), got {}",
                    args.plateau_factor
                );
            }
            if args.plateau_patience == 0 {
                bail!("--plateau-patience must be at least 1");
            }
            Schedule::Plateau {
                factor: args.plateau_factor,
                patience: args.plateau_patience,
            }
        }
    };
    Ok((optimizer, schedule))
}

/// `--teacher` runs, checked; none: labels only.
fn distillation(args: &TrainArgs) -> Result<Option<model_quant::distill::Distill>> {
    if args.teachers.is_empty() {
        return Ok(None);
    }
    let distill = model_quant::distill::Distill {
        teachers: args.teachers.clone(),
        temperature: args.distill_temperature,
        weight: args.distill_weight,
    };
    distill.validate()?;
    Ok(Some(distill))
}

fn run_train(args: TrainArgs) -> Result<()> {
    let mut arch =
        Arch::by_name(&args.arch).with_context(|| format!("unknown --arch {}", args.arch))?;
    if let Some(dropout) = args.dropout {
        arch.dropout = dropout;
    }
    if args.no_batch_norm {
        arch.batch_norm = false;
    }
    if let Some(side) = args.crop {
        arch.set_crop(side)?;
    }
    if !(0.0..1.0).contains(&args.validation_fraction) {
        bail!("--validation-fraction must be in [0, 1)");
    }
    let config = TrainConfig {
        arch,
        epochs: args.epochs,
        batch_size: args.batch_size.max(1),
        learning_rate: args.learning_rate,
        min_learning_rate: args.min_learning_rate,
        weight_decay: args.weight_decay,
        label_smoothing: args.label_smoothing,
        class_weights: args.class_weights,
        augment: augment_config(&args)?,
        patience: args.patience,
        seed: args.seed,
        split: SplitConfig {
            validation_fraction: args.validation_fraction,
            limit_per_class: args.limit_per_class,
        },
        init_from: args.init_from.clone(),
        optimizer: optimizer_and_schedule(&args)?.0,
        schedule: optimizer_and_schedule(&args)?.1,
        distill: distillation(&args)?,
        mixup: args.mixup,
    };
    if let Some(alpha) = config.mixup {
        model_quant::mixup::validate_alpha(alpha)?;
    }
    let training = data::load(&args.data)?.with_usage(Usage::Training);
    let (train_set, validation_set) = config.split_faces(&training);
    tracing::info!(
        arch = %config.arch.name,
        parameters = config.arch.parameter_count(),
        train = train_set.len(),
        validation = validation_set.len(),
        "training"
    );
    let run = RunDir::new(&args.run);
    let log = train::train(
        &config,
        &train_set,
        &validation_set,
        &run,
        args.resume,
        args.backend,
    )?;
    if let Some(best) = log
        .iter()
        .max_by(|a, b| a.validation_accuracy.total_cmp(&b.validation_accuracy))
    {
        println!(
            "best epoch {} of {}: validation accuracy {:.4}, train accuracy {:.4}; model {}",
            best.epoch,
            log.len(),
            best.validation_accuracy,
            best.train_accuracy,
            run.best_model().display()
        );
    }
    Ok(())
}
