//! The command line of both binaries: `ekspresi` (this crate, no hardware: demo, replay,
//! detect, classify) and `kiosk` (the `board` crate, the same commands on the Pi's camera
//! and GPIO). Each binary is one line, `cli::main(&its_board)`; this module is binary code
//! kept in the library so the two cannot drift apart, hence `anyhow` here.

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use crate::aggregate::top_expression;
use crate::board::Board;
use crate::check::{run_checks, CheckOptions};
use crate::config::KioskConfig;
use crate::detect::{Cascade, DetectParams, Detector};
use crate::devices::{simulated_leds, FrameSource};
use crate::pipeline::Kiosk;
use crate::source::{demo_clip, ImageFolderSource, Mp4Source, Paced};
use crate::{imageio, models, service};
use anyhow::{bail, Context, Result};
use clap::{Args, Parser, Subcommand};
use ekspresi_common::model::ExpressionModel;
use ekspresi_common::prepare_face;
use serde::Serialize;

const RESPONSIBLE_USE: &str = "\
RESPONSIBLE USE: emotion recognition on students is regulated. The EU AI Act prohibits \
emotion recognition in education institutions (Art. 5(1)(f)); children's images are special \
personal data almost everywhere; use it only where the law allows, with informed consent, and \
never to judge an individual. The models are right on about 3 in 5 unseen faces, weakest on disgust, fear and sad \
(each model's FER-2013 PublicTest accuracy: firmware/models/models.json; firmware/models/MODEL_CARD.md). The camera-on LED is lit whenever frames \
are captured.";

#[derive(Parser)]
#[command(version, about = "Ekspresi student-expression kiosk", after_help = RESPONSIBLE_USE)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the kiosk service: camera → LEDs and session files, until SIGTERM (systemd's unit).
    Run(ServiceArgs),
    /// Self-test for the technician: config, model, cascade, storage, camera, GPIO, and every
    /// listed model's time a face on this CPU (int8 and fp32).
    Check(CheckArgs),
    /// Run the kiosk on the bundled demo clip (no camera needed), writing a session to --out.
    Demo(DemoArgs),
    /// Analyse a recorded clip: an MP4 the kiosk wrote, any other video through the system's
    /// ffmpeg (AVI, MKV, plain or High-profile MP4, …), or a folder of PNG/JPEG frames (with
    /// an optional clip.json giving its fps).
    Replay(ReplayArgs),
    /// Find faces in still images (PNG, JPEG) with the Haar cascade.
    Detect(DetectArgs),
    /// Classify the expression of face images (each image is taken as one face crop).
    Classify(ClassifyArgs),
    /// Decrypt a session's encrypted video (config `encrypt_to`) into one playable MP4, with
    /// the school's age identity. Run it where the identity is kept, never on a kiosk.
    Decrypt(DecryptArgs),
    /// Copy this card's finished, not yet uploaded lessons to a directory or an ssh://
    /// server, verify them there, and only then mark them uploaded (resumable, idempotent).
    Upload(UploadArgs),
    /// The teacher's class report: read every session under the ROOTs (many desks), verify
    /// each MANIFEST, group them into lessons, and write index.html, class.csv and class.json.
    Report(ReportArgs),
    /// On the desk: publish the running lesson's aggregates (counts per second, never an
    /// image) to the school's MQTT broker every 10 s, until SIGTERM (its own unit).
    Publish(PublishArgs),
    /// On the teacher's machine: the live class view — subscribe to the desks' aggregates and
    /// serve one page on 127.0.0.1 (nothing shown below the privacy floor, no desk named).
    Live(LiveArgs),
}

#[derive(Args)]
struct PublishArgs {
    /// Config JSON (its desk_id, data_dir and `publish` broker settings).
    #[arg(long, default_value = DEFAULT_CONFIG)]
    config: PathBuf,
}

#[derive(Args)]
struct LiveArgs {
    /// The school's broker, host:port (TLS).
    #[arg(long)]
    broker: String,
    /// The school's CA certificate (PEM) the broker's certificate is checked against.
    #[arg(long)]
    ca: PathBuf,
    /// The live view's user name on the broker (the ACL lets it read, not write).
    #[arg(long, default_value = "live")]
    user: String,
    /// File holding that user's broker password.
    #[arg(long)]
    password_file: PathBuf,
    /// Address to serve the page on (loopback only).
    #[arg(long, default_value = "127.0.0.1:8470")]
    listen: std::net::SocketAddr,
    /// Nothing is shown until at least this many desks see a face (5 or more).
    #[arg(long, default_value_t = 10)]
    min_desks: usize,
}

#[derive(Args)]
struct UploadArgs {
    /// Config JSON (its `data_dir`, and `upload` for the destination and SSH settings).
    #[arg(long, default_value = DEFAULT_CONFIG)]
    config: PathBuf,
    /// Destination: a directory (USB stick, mounted share) or ssh://user@host[:port]/path
    /// [default: the config's upload.to].
    #[arg(long)]
    to: Option<String>,
}

#[derive(Args)]
struct ReportArgs {
    /// Folder the report is written to (created; files in it are replaced).
    #[arg(long)]
    out: PathBuf,
    /// Folders holding session folders (upload destinations, or cards' data directories),
    /// searched to any depth.
    #[arg(required = true)]
    roots: Vec<PathBuf>,
}

#[derive(Args)]
struct DecryptArgs {
    /// Session folder holding the video-NNNNNN.mp4.age segments.
    session: PathBuf,
    /// age identity file (as written by age-keygen) of one of the recipients.
    #[arg(long)]
    identity: PathBuf,
    /// The MP4 to write; an existing file is never overwritten.
    #[arg(long, default_value = "video.mp4")]
    out: PathBuf,
}

#[derive(Args)]
struct ServiceArgs {
    /// Config JSON (defaults for every field it leaves out).
    #[arg(long, default_value = DEFAULT_CONFIG)]
    config: PathBuf,
    /// Drive simulated LEDs instead of GPIO (a laptop with a webcam).
    #[arg(long)]
    simulate_leds: bool,
}

#[derive(Args)]
struct CheckArgs {
    /// Config JSON to check [default: /etc/ekspresi/config.json if it exists, else the
    /// built-in defaults, said so in the output].
    #[arg(long)]
    config: Option<PathBuf>,
    /// Skip the camera check.
    #[arg(long)]
    no_camera: bool,
    /// Skip the GPIO check (not on a Pi).
    #[arg(long)]
    no_gpio: bool,
    /// Print the results as JSON.
    #[arg(long)]
    json: bool,
    /// Check a desk's file system mounted at ROOT rather than this machine (install.sh does,
    /// on the card it has just written): its config (unless --config) and its models; the
    /// camera, GPIO and storage are the Pi's, checked there.
    #[arg(long)]
    root: Option<PathBuf>,
}

/// Where the deploy kit installs the config.
const DEFAULT_CONFIG: &str = "/etc/ekspresi/config.json";

#[derive(Args)]
struct DemoArgs {
    /// Data directory; the session folder is created under it.
    #[arg(long, default_value = "demo-out")]
    out: PathBuf,
    #[command(flatten)]
    common: RunArgs,
}

#[derive(Args)]
struct ReplayArgs {
    /// MP4 file or folder of frames.
    video: PathBuf,
    /// Data directory; the session folder is created under it.
    #[arg(long)]
    out: PathBuf,
    #[command(flatten)]
    common: RunArgs,
}

#[derive(Args)]
struct RunArgs {
    /// Config JSON (defaults for every field it leaves out).
    #[arg(long)]
    config: Option<PathBuf>,
    /// Expression model: a name from firmware/models/models.json or an ONNX path
    /// [default: the manifest's default, the int8 LeNet-5].
    #[arg(long)]
    model: Option<String>,
    /// Print the LED transitions of the simulated board.
    #[arg(long)]
    show_leds: bool,
    /// Play the clip at its own pace, each frame at its timestamp, as a camera delivers
    /// frames (default: as fast as the analysis goes).
    #[arg(long)]
    realtime: bool,
}

#[derive(Args)]
struct DetectArgs {
    /// PNG or JPEG images to search.
    images: Vec<PathBuf>,
    /// Print a JSON array, one object per image.
    #[arg(long)]
    json: bool,
    /// Pyramid step between scales, as OpenCV's `scaleFactor` (1.01..4).
    #[arg(long, default_value_t = 1.1)]
    scale_factor: f64,
    /// Raw hits a face needs, as OpenCV's `minNeighbors`.
    #[arg(long, default_value_t = 5)]
    min_neighbors: usize,
    /// Smallest face side searched, in pixels.
    #[arg(long, default_value_t = 30)]
    min_size: u32,
    /// Largest face side searched, in pixels (default: the whole frame).
    #[arg(long)]
    max_size: Option<u32>,
    /// Cascade XML (default: the bundled OpenCV frontal-face cascade).
    #[arg(long)]
    cascade: Option<PathBuf>,
}

#[derive(Args)]
struct ClassifyArgs {
    /// PNG or JPEG face crops, one face each.
    images: Vec<PathBuf>,
    /// Expression model: a name from firmware/models/models.json or an ONNX path
    /// [default: the manifest's default, the int8 LeNet-5].
    #[arg(long)]
    model: Option<String>,
    /// Print a JSON array, one object per image.
    #[arg(long)]
    json: bool,
}

/// The binaries' `main`: runs the command line on `board` and prints a failure as one line
/// of causes (`Error: a: b: c`), never a Rust backtrace — not even with `RUST_BACKTRACE`
/// set, where anyhow's default report would add one that reads like a crash.
pub fn run<B: Board>(board: &B) -> std::process::ExitCode {
    match main(board) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("Error: {}", terminal_safe(&format!("{error:#}")));
            std::process::ExitCode::FAILURE
        }
    }
}

/// `text` with every control character escaped (`\u{1b}`, `\u{7}`, `\n`, …): names and
/// reasons that come from a desk's files or folder names reach the teacher's terminal as
/// data, never as escape sequences that retitle the window, move the cursor or hide lines.
pub fn terminal_safe(text: &str) -> String {
    let mut safe = String::with_capacity(text.len());
    for c in text.chars() {
        if c.is_control() {
            safe.extend(c.escape_default());
        } else {
            safe.push(c);
        }
    }
    safe
}

/// Parses the command line and runs it on `board`.
pub fn main<B: Board>(board: &B) -> Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            // Quiet by default (warnings and errors); RUST_LOG=info shows the lesson's
            // progress, and tract's own chatter only when asked for by name.
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        // Colour only on a terminal: the journal (the kiosk's service) and files get plain text.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    match Cli::parse().command {
        Command::Run(args) => run_service(board, args),
        Command::Check(args) => check(board, args),
        Command::Demo(args) => replay(Clip::BuiltInDemo, &args.out, &args.common),
        Command::Replay(args) => replay(Clip::File(&args.video), &args.out, &args.common),
        Command::Detect(args) => detect(args),
        Command::Classify(args) => classify(args),
        Command::Decrypt(args) => decrypt(args),
        Command::Upload(args) => upload(args),
        Command::Report(args) => report(args),
        Command::Publish(args) => publish(args),
        Command::Live(args) => live(args),
    }
}

fn load_config(path: Option<&Path>) -> Result<KioskConfig> {
    Ok(match path {
        Some(path) => KioskConfig::load(path)?,
        None => KioskConfig::default(),
    })
}

/// What a run analyses.
enum Clip<'a> {
    /// The demo clip built into the binary.
    BuiltInDemo,
    /// An MP4 or a folder of frames.
    File(&'a Path),
}

fn replay(clip: Clip<'_>, out: &Path, args: &RunArgs) -> Result<()> {
    let mut config = load_config(args.config.as_deref())?;
    config.data_dir = out.to_owned();
    let model = models::resolve(args.model.as_deref().or(config.model.as_deref()))?;
    let source: Box<dyn FrameSource> = match clip {
        Clip::BuiltInDemo => Box::new(demo_clip()?),
        Clip::File(dir) if dir.is_dir() => {
            Box::new(ImageFolderSource::open(dir, f64::from(config.camera.fps))?)
        }
        Clip::File(file) => recorded_video(file)?,
    };
    let source: Box<dyn FrameSource> = if args.realtime {
        Box::new(Paced::new(source))
    } else {
        source
    };
    let (leds, transitions) = simulated_leds();
    let mut kiosk = Kiosk::new(config, model, leds)?;
    // Long replays show their progress (on a terminal only; indicatif hides it otherwise).
    let bar = indicatif::ProgressBar::new_spinner().with_style(
        indicatif::ProgressStyle::with_template(
            "{spinner} {pos} frames analysed in {elapsed} {wide_msg}",
        )
        .context("progress bar template")?,
    );
    bar.set_message(source.describe());
    let ticker = bar.clone();
    kiosk.on_frame(move || ticker.inc(1));
    let stop = Arc::new(AtomicBool::new(false));
    let reports = kiosk.run_lessons(source, stop);
    bar.finish_and_clear();
    let reports = reports?;
    if args.show_leds {
        for t in transitions.lock().map(|t| t.clone()).unwrap_or_default() {
            eprintln!("led {} {}", t.pin, if t.high { "on" } else { "off" });
        }
    }
    for report in &reports {
        println!("session: {}", report.session.display());
        println!("{}", report.summary.to_text());
    }
    let failed = reports
        .iter()
        .find_map(|r| r.source_error.as_ref().map(|error| (r, error)));
    if let Some((report, error)) = failed {
        bail!(
            "the source failed mid-lesson: {error} (files in {} are complete up to there)",
            report.session.display()
        );
    }
    Ok(())
}

/// A video file: the kiosk's own recordings through `Mp4Source` (exact frame times, no
/// external tool), anything else through ffmpeg, with both reasons if neither reads it.
/// Only a regular file is read: a FIFO would hang the probe or be read twice (once by each
/// reader), a device would never end.
fn recorded_video(file: &Path) -> Result<Box<dyn FrameSource>> {
    let kind = std::fs::metadata(file)
        .with_context(|| format!("cannot read {}", file.display()))?
        .file_type();
    if !kind.is_file() {
        bail!(
            "{}: not a regular file (a pipe, device or socket is not replayed)",
            file.display()
        );
    }
    match Mp4Source::open(file) {
        Ok(source) => Ok(Box::new(source)),
        Err(own) => {
            tracing::info!(%own, "not a kiosk recording; decoding with ffmpeg");
            match crate::source::FfmpegSource::open(file) {
                Ok(source) => Ok(Box::new(source)),
                Err(ffmpeg) => bail!("{own}; and through ffmpeg: {ffmpeg}"),
            }
        }
    }
}

fn run_service<B: Board>(board: &B, args: ServiceArgs) -> Result<()> {
    let config = KioskConfig::load(&args.config)?;
    reexec_under_libcamera_if_configured(board, &config)?;
    let model = models::resolve(config.model.as_deref())?;
    let stop = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
        signal_hook::flag::register(signal, stop.clone())
            .context("cannot install the signal handler")?;
    }
    if args.simulate_leds {
        let (leds, _) = simulated_leds();
        return service::run(board, config, model, leds, stop);
    }
    let leds = board
        .open_leds(&config.gpio)
        .map_err(|e| anyhow::anyhow!(e))?;
    service::run(board, config, model, leds, stop)
}

/// When the config asks for libcamera's V4L2 compatibility layer and it is not loaded yet,
/// restarts this process (same PID, so systemd's notify socket still matches) with it
/// preloaded: what `libcamerify` does. Returns only when nothing needs doing.
fn reexec_under_libcamera_if_configured(board: &impl Board, config: &KioskConfig) -> Result<()> {
    use std::os::unix::process::CommandExt;
    if !config.camera.libcamera_compat {
        return Ok(());
    }
    let Some(library) = board
        .libcamera_compat_to_load()
        .map_err(|e| anyhow::anyhow!(e))?
    else {
        return Ok(());
    };
    let exe = std::env::current_exe().context("cannot find the kiosk binary to re-execute")?;
    tracing::info!(library = %library.display(), "re-executing under libcamera's V4L2 compatibility layer");
    let error = std::process::Command::new(exe)
        .args(std::env::args_os().skip(1))
        .env("LD_PRELOAD", library)
        .exec();
    Err(error).context("cannot re-execute under libcamera's compatibility layer")
}

fn check<B: Board>(board: &B, args: CheckArgs) -> Result<()> {
    let root = args.root.as_deref();
    let installed = on_card(root, Path::new(DEFAULT_CONFIG));
    let config = match &args.config {
        Some(path) => KioskConfig::load(path)?,
        None if installed.exists() => KioskConfig::load(&installed)?,
        None if root.is_some() => bail!("no config at {}", installed.display()),
        None => {
            println!(
                "config   --   none given and no {DEFAULT_CONFIG}: checking the built-in defaults"
            );
            KioskConfig::default()
        }
    };
    let (model, card_models) = match root {
        Some(root) => {
            let card_models =
                models::Installed::read(&on_card(Some(root), Path::new(models::INSTALL_DIR)))?;
            let model = match config.model.as_deref() {
                Some(path) if models::is_path(path) => on_card(Some(root), Path::new(path)),
                configured => card_models.resolve(configured)?,
            };
            println!(
                "checking the desk at {}: camera, GPIO and storage are checked on the Pi",
                root.display()
            );
            (model, Some(card_models))
        }
        None => {
            // Check the camera the way the service will use it.
            reexec_under_libcamera_if_configured(board, &config)?;
            (models::resolve(config.model.as_deref())?, None)
        }
    };
    let on_this_machine = root.is_none();
    let options = CheckOptions {
        camera: !args.no_camera && on_this_machine,
        gpio: !args.no_gpio && on_this_machine,
        storage: on_this_machine,
        models: card_models,
        broker: on_this_machine,
        speed: on_this_machine,
    };
    let results = run_checks(board, &config, &model, &options);
    if args.json {
        println!("{}", serde_json::to_string_pretty(&results)?);
    } else {
        for r in &results {
            println!(
                "{:<8} {:<4} {}",
                r.name,
                if r.ok { "ok" } else { "FAIL" },
                r.detail
            );
        }
    }
    let failed = results.iter().filter(|r| !r.ok).count();
    if failed > 0 {
        bail!("{failed} check(s) failed");
    }
    Ok(())
}

/// `path` (absolute, as the Pi sees it) on the desk's file system mounted at `root`.
fn on_card(root: Option<&Path>, path: &Path) -> PathBuf {
    match root {
        Some(root) => root.join(path.strip_prefix("/").unwrap_or(path)),
        None => path.to_owned(),
    }
}

#[derive(Serialize)]
struct ImageFaces {
    image: String,
    faces: Vec<[i32; 4]>,
}

fn detect(args: DetectArgs) -> Result<()> {
    let cascade = match &args.cascade {
        Some(path) => Cascade::load(path)?,
        None => Cascade::frontal_face()?,
    };
    let params = DetectParams {
        scale_factor: args.scale_factor,
        min_neighbors: args.min_neighbors,
        min_size: args.min_size,
        max_size: args.max_size,
    };
    let mut detector = Detector::new(cascade, params)?;
    let mut results = Vec::new();
    for path in &args.images {
        let grey = imageio::read_grey(path).context("detect needs PNG or JPEG images")?;
        let faces = detector
            .detect(grey.image())
            .iter()
            .map(|r| [r.x, r.y, r.width, r.height])
            .collect();
        results.push(ImageFaces {
            image: path.display().to_string(),
            faces,
        });
    }
    if args.json {
        println!("{}", serde_json::to_string(&results)?);
    } else {
        for r in &results {
            println!("{}: {} face(s) {:?}", r.image, r.faces.len(), r.faces);
        }
    }
    Ok(())
}

#[derive(Serialize)]
struct Classified {
    image: String,
    expression: &'static str,
    probabilities: Vec<(&'static str, f32)>,
}

fn classify(args: ClassifyArgs) -> Result<()> {
    let model_path = models::resolve(args.model.as_deref())?;
    let model = ExpressionModel::load(&model_path, 1)?;
    let mut results = Vec::new();
    for path in &args.images {
        let grey = imageio::read_grey(path)?;
        let probabilities = model.classify(&prepare_face(grey.image()))?[0];
        results.push(Classified {
            image: path.display().to_string(),
            expression: top_expression(&probabilities).name(),
            probabilities: ekspresi_common::Expression::ALL
                .iter()
                .map(|e| (e.name(), probabilities[e.label()]))
                .collect(),
        });
    }
    if args.json {
        println!("{}", serde_json::to_string(&results)?);
    } else {
        for r in &results {
            println!("{}: {}", r.image, r.expression);
        }
    }
    Ok(())
}

fn decrypt(args: DecryptArgs) -> Result<()> {
    let identities = crate::seal::read_identities(&args.identity)?;
    if args.out.exists() {
        bail!("{} exists; choose another --out", args.out.display());
    }
    // A temporary file of its own beside the output, renamed into place only when whole and
    // never over an existing file: a run killed half-way leaves a `.partial` file behind
    // that blocks no later run (issue 29).
    let dir = match args.out.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent.to_owned(),
        _ => PathBuf::from("."),
    };
    let name = args
        .out
        .file_name()
        .map_or_else(|| "video".into(), |n| n.to_string_lossy().into_owned());
    let mut partial = tempfile::Builder::new()
        .prefix(&format!(".{name}."))
        .suffix(".partial")
        .tempfile_in(&dir)
        .with_context(|| format!("cannot create a temporary file in {}", dir.display()))?;
    let segments = crate::seal::decrypt_session(&args.session, &identities, partial.as_file_mut())?;
    partial.as_file().sync_all()?;
    partial
        .persist_noclobber(&args.out)
        .map_err(|e| anyhow::anyhow!("cannot write {}: {}", args.out.display(), e.error))?;
    println!("{}: {segments} segments decrypted", args.out.display());
    Ok(())
}

fn upload(args: UploadArgs) -> Result<()> {
    use crate::upload::{Destination, HostKey, SshAccess, Transport};
    let config = KioskConfig::load(&args.config)?;
    let Some(to) = args.to.or(config.upload.to.clone()) else {
        println!("no upload destination: give --to, or set upload.to in the config");
        return Ok(());
    };
    let destination = Destination::parse(&to)?;
    let ssh = match (&destination, &config.upload.host_key) {
        (Destination::Ssh(_), Some(key)) => Some(SshAccess {
            identity: config.upload.ssh_key.clone(),
            host_key: HostKey::parse(key)?,
        }),
        _ => None,
    };
    let transport = Transport::new(destination, ssh)?;
    let bar = indicatif::ProgressBar::new(0).with_style(
        indicatif::ProgressStyle::with_template("uploading {pos}/{len} {wide_msg}")
            .context("progress bar template")?,
    );
    let outcome = crate::upload::upload_all(&config.data_dir, &transport, |session, done, all| {
        bar.set_length(all as u64);
        bar.set_position(done as u64);
        bar.set_message(terminal_safe(&format!("{}/{}", session.desk, session.name)));
    })?;
    bar.finish_and_clear();
    for session in &outcome.uploaded {
        println!(
            "uploaded {}",
            terminal_safe(&format!("{}/{}", session.desk, session.name))
        );
    }
    for (session, reason) in &outcome.failed {
        println!(
            "not uploaded {}",
            terminal_safe(&format!("{}/{}: {reason}", session.desk, session.name))
        );
    }
    println!(
        "{} uploaded to {}, {} already uploaded, {} unfinished left alone",
        outcome.uploaded.len(),
        transport.destination(),
        outcome.already_uploaded,
        outcome.unfinished
    );
    if !outcome.failed.is_empty() {
        bail!(
            "{} lessons of this card could not be uploaded (above); the others were",
            outcome.failed.len()
        );
    }
    Ok(())
}

fn publish(args: PublishArgs) -> Result<()> {
    let config = KioskConfig::load(&args.config)?;
    let stop = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
        signal_hook::flag::register(signal, stop.clone())?;
    }
    crate::live::publish::run(&config, &stop)
}

fn live(args: LiveArgs) -> Result<()> {
    use crate::live::class::{LiveSettings, LEAST_MIN_DESKS};
    if args.min_desks < LEAST_MIN_DESKS {
        anyhow::bail!(
            "--min-desks {} is below the privacy floor's least, {LEAST_MIN_DESKS}",
            args.min_desks
        );
    }
    let stop = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
        signal_hook::flag::register(signal, stop.clone())?;
    }
    let options = crate::live::server::LiveOptions {
        listen: args.listen,
        broker: args.broker,
        ca: args.ca,
        user: args.user,
        password: crate::live::broker::read_secret(&args.password_file)?,
        settings: LiveSettings {
            min_desks: args.min_desks,
            ..LiveSettings::default()
        },
    };
    crate::live::server::run(options, &stop)
}

fn report(args: ReportArgs) -> Result<()> {
    let bar = indicatif::ProgressBar::new_spinner().with_style(
        indicatif::ProgressStyle::with_template("{spinner} {pos} sessions read {wide_msg}")
            .context("progress bar template")?,
    );
    let written = crate::report::write_report(&args.roots, &args.out, |read| {
        bar.set_position(read as u64);
    })?;
    bar.finish_and_clear();
    println!(
        "{}: {} lessons from {} sessions of {} desks; {} sessions rejected",
        args.out.join("index.html").display(),
        written.lessons,
        written.sessions,
        written.desks,
        written.rejected.len()
    );
    for (path, reason) in &written.rejected {
        println!(
            "rejected {}",
            terminal_safe(&format!("{}: {reason}", path.display()))
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_reach_the_terminal_escaped() {
        let hostile = "desk-1/\u{1b}]0;owned\u{7}\u{1b}[2K\r\nfake line";
        let safe = terminal_safe(hostile);
        assert!(!safe.chars().any(char::is_control), "{safe:?}");
        assert_eq!(
            safe,
            "desk-1/\\u{1b}]0;owned\\u{7}\\u{1b}[2K\\r\\nfake line"
        );
        assert_eq!(terminal_safe("Lesson 3 — ŝkolo ✓"), "Lesson 3 — ŝkolo ✓");
    }
}
