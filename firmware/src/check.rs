//! `kiosk check`: the technician's self-test. Each check runs independently and reports
//! ok / FAIL with a reason, so one command tells what works on a freshly flashed desk:
//! config, model (loads, and gives probabilities summing to 1), cascade, storage (writable,
//! free space over the floor), camera (opens and delivers a frame, and through which path:
//! plain V4L2 or libcamera's compatibility layer), video (off, in the clear, or encrypted
//! to how many recipients), the broker of the live class view (reachable, TLS and the desk's
//! password accepted), GPIO (claims the three LED pins and blinks them once), and the speed
//! of every listed model a face on this CPU, int8 and its fp32 twin.

use std::path::Path;
use std::time::Duration;

use ekspresi_common::model::ExpressionModel;
use serde::Serialize;

use crate::board::Board;
use crate::config::{KioskConfig, VideoMode};
use crate::detect::Cascade;
use crate::models::Installed;

/// One line of the self-test.
#[derive(Debug, Serialize)]
pub struct CheckResult {
    pub name: &'static str,
    pub ok: bool,
    pub detail: String,
    /// The `speed` check's measurements (empty for the others).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub timings: Vec<ModelTiming>,
}

/// One model's time a face on this CPU, as int8 or as its fp32 twin.
#[derive(Debug, Clone, Serialize)]
pub struct ModelTiming {
    pub model: String,
    /// `int8` (what the kiosk runs) or `fp32` (its float twin).
    pub precision: &'static str,
    /// Median wall time of one face, batch 1, after warming up.
    pub median_us_per_face: f64,
    /// The matmul kernels tract chose on this CPU.
    pub kernels: Vec<String>,
}

/// What to check.
pub struct CheckOptions {
    pub camera: bool,
    pub gpio: bool,
    /// The data directory (writable, free space over the floor).
    pub storage: bool,
    /// The models to probe; `None`: the manifest found in the usual places.
    pub models: Option<Installed>,
    /// Connect to the configured MQTT broker (the live class view) as this desk.
    pub broker: bool,
    /// Time every listed model a face on this CPU, int8 and fp32.
    pub speed: bool,
}

/// Runs every check; never stops at the first failure.
pub fn run_checks(
    board: &impl Board,
    config: &KioskConfig,
    model: &Path,
    options: &CheckOptions,
) -> Vec<CheckResult> {
    let mut results = vec![
        result("config", config.validate().map(|_| "valid".to_owned())),
        result("model", check_model(model)),
        result("models", check_shipped_models(options.models.as_ref())),
        result(
            "cascade",
            Cascade::frontal_face().map(|c| format!("{} stages", c.stages.len())),
        ),
        result("video", check_video(config)),
    ];
    if options.storage {
        results.push(result("storage", check_storage(config)));
    }
    if options.speed {
        results.push(check_speed(options.models.as_ref()));
    }
    if options.broker {
        results.push(result("broker", crate::live::broker::probe(config)));
        results.push(result("timetable", check_timetable(config)));
    }
    if options.camera || options.gpio {
        // Which board the hardware checks below ran on.
        results.push(CheckResult {
            name: "platform",
            ok: true,
            detail: board.describe(),
            timings: Vec::new(),
        });
    }
    if options.camera {
        results.push(result("camera", check_camera(board, config)));
    }
    if options.gpio {
        results.push(result("gpio", check_gpio(board, config)));
    }
    results
}

fn result<E: std::fmt::Display>(name: &'static str, outcome: Result<String, E>) -> CheckResult {
    match outcome {
        Ok(detail) => CheckResult {
            name,
            ok: true,
            detail,
            timings: Vec::new(),
        },
        Err(error) => CheckResult {
            name,
            ok: false,
            detail: error.to_string(),
            timings: Vec::new(),
        },
    }
}

/// The timetable: how many lessons, and whether the clock can be trusted to follow it.
fn check_timetable(config: &KioskConfig) -> Result<String, String> {
    let lessons = config.timetable.len();
    if lessons == 0 {
        return Ok("none: the camera records from start to stop".into());
    }
    if !crate::timetable::clock_is_trusted() {
        return Err(format!(
            "{lessons} lessons, but the clock is not synchronised (NTP): no lesson starts until it is"
        ));
    }
    Ok(format!("{lessons} lessons; the clock is synchronised"))
}

/// The model must load and turn a mid-grey input into probabilities summing to 1.
fn check_model(path: &Path) -> anyhow::Result<String> {
    let model = ExpressionModel::load(path, 1)?;
    let face = vec![0.5f32; ekspresi_common::contract::INPUT_LEN];
    let probabilities = model.classify(&face)?[0];
    let sum: f32 = probabilities.iter().sum();
    anyhow::ensure!((sum - 1.0).abs() < 1e-3, "output does not sum to 1 ({sum})");
    Ok(format!("{} loads and classifies", path.display()))
}

/// Every model `models.json` lists must load and classify (a technician may switch to any).
fn check_shipped_models(models: Option<&Installed>) -> anyhow::Result<String> {
    let installed = given_or_found(models)?;
    let mut probed = Vec::new();
    for model in &installed.manifest.models {
        let path = installed.path_of(model);
        check_model(&path).map_err(|e| anyhow::anyhow!("{}: {e}", model.name))?;
        probed.push(model.name.as_str());
    }
    Ok(format!(
        "{} listed, all load and classify: {}",
        probed.len(),
        probed.join(", ")
    ))
}

/// Faces timed per model and precision (after as many warm-up runs as [`WARM_UP`]).
const TIMED_FACES: usize = 31;
const WARM_UP: usize = 5;

/// The models given (a desk's card), or the manifest found in the usual places.
fn given_or_found(models: Option<&Installed>) -> anyhow::Result<std::borrow::Cow<'_, Installed>> {
    Ok(match models {
        Some(installed) => std::borrow::Cow::Borrowed(installed),
        None => std::borrow::Cow::Owned(Installed::find()?),
    })
}

/// Every listed model, int8 and (where installed) its fp32 twin, timed a face on this CPU:
/// tract's int8 kernels differ by core (the Pi 4's Cortex-A72 has no dot-product
/// instructions), so whether int8 beats fp32 on a desk is measured there, not assumed.
fn check_speed(models: Option<&Installed>) -> CheckResult {
    match time_models(models) {
        Ok(timings) => {
            let detail = timings
                .iter()
                .map(|t| format!("{} {} {:.0} µs", t.model, t.precision, t.median_us_per_face))
                .collect::<Vec<_>>()
                .join(", ");
            CheckResult {
                name: "speed",
                ok: true,
                detail: format!("a face on this CPU (median of {TIMED_FACES}): {detail}"),
                timings,
            }
        }
        Err(error) => result("speed", Err::<String, _>(error)),
    }
}

fn time_models(models: Option<&Installed>) -> anyhow::Result<Vec<ModelTiming>> {
    let installed = given_or_found(models)?;
    let mut timings = Vec::new();
    for listed in &installed.manifest.models {
        let int8 = installed.path_of(listed);
        let twin = ekspresi_common::manifest::fp32_twin(&int8).filter(|p| p.exists());
        for (precision, path) in [("int8", Some(int8)), ("fp32", twin)] {
            let Some(path) = path else { continue };
            let timing = time_model(&path)
                .map_err(|e| anyhow::anyhow!("{} {precision}: {e}", listed.name))?;
            timings.push(ModelTiming {
                model: listed.name.clone(),
                precision,
                median_us_per_face: timing.0,
                kernels: timing.1,
            });
        }
    }
    Ok(timings)
}

/// Median µs of one face (batch 1) and the kernels tract chose.
fn time_model(path: &Path) -> anyhow::Result<(f64, Vec<String>)> {
    let model = ExpressionModel::load(path, 1)?;
    let face = vec![0.5f32; ekspresi_common::contract::INPUT_LEN];
    for _ in 0..WARM_UP {
        model.classify(&face)?;
    }
    let mut micros = Vec::with_capacity(TIMED_FACES);
    for _ in 0..TIMED_FACES {
        let started = std::time::Instant::now();
        model.classify(&face)?;
        micros.push(started.elapsed().as_secs_f64() * 1e6);
    }
    micros.sort_by(f64::total_cmp);
    let mut kernels = model.matmul_kernels();
    kernels.sort();
    kernels.dedup();
    Ok((micros[TIMED_FACES / 2], kernels))
}

/// Whether the video is recorded, and whether it is encrypted at rest.
fn check_video(config: &KioskConfig) -> Result<String, crate::seal::SealError> {
    let recipients = crate::seal::parse_recipients(&config.encrypt_to)?;
    let picture = match config.video {
        VideoMode::Off => return Ok("off: aggregates only".to_owned()),
        VideoMode::Clear => "recorded",
        VideoMode::Blurred => "recorded with the picture blurred",
    };
    Ok(match recipients.len() {
        0 => format!("{picture} IN THE CLEAR (set encrypt_to to the school's age public key)"),
        n => format!("{picture}, encrypted at rest to {n} age recipient(s)"),
    })
}

fn check_storage(config: &KioskConfig) -> anyhow::Result<String> {
    std::fs::create_dir_all(&config.data_dir)?;
    let probe = config.data_dir.join(".kiosk-check");
    crate::record::summary::write_atomically(&probe, b"ok")?;
    std::fs::remove_file(&probe)?;
    let free_mib = fs4::available_space(&config.data_dir)? / (1024 * 1024);
    anyhow::ensure!(
        free_mib >= config.min_free_mib,
        "{} has {free_mib} MiB free, under the {} MiB floor",
        config.data_dir.display(),
        config.min_free_mib
    );
    Ok(format!(
        "{} writable, {free_mib} MiB free",
        config.data_dir.display()
    ))
}

fn check_camera(board: &impl Board, config: &KioskConfig) -> anyhow::Result<String> {
    let mut source = board.open_camera(&config.camera)?;
    let frame = source
        .next_frame()?
        .ok_or_else(|| anyhow::anyhow!("no frame"))?;
    Ok(format!(
        "{}: got a {}×{} frame",
        source.describe(),
        frame.width(),
        frame.height()
    ))
}

fn check_gpio(board: &impl Board, config: &KioskConfig) -> anyhow::Result<String> {
    let gpio = &config.gpio;
    let mut leds = board.open_leds(gpio).map_err(|e| anyhow::anyhow!(e))?;
    // Light each LED for a moment so the technician can see the wiring is right.
    use crate::aggregate::Impression;
    for impression in [Impression::Good, Impression::Bad] {
        leds.show(impression)?;
        std::thread::sleep(Duration::from_millis(400));
    }
    leds.show(Impression::Insufficient)?;
    leds.camera(true)?;
    std::thread::sleep(Duration::from_millis(400));
    leds.off()?;
    Ok(format!(
        "GPIO {} (good), {} (bad), {} (camera) blinked",
        gpio.good_led, gpio.bad_led, gpio.camera_led
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::board::NoBoard;

    #[test]
    fn checks_report_each_failure_without_stopping() {
        let config = KioskConfig {
            data_dir: std::env::temp_dir().join(format!("ekspresi-check-{}", std::process::id())),
            camera: crate::config::CameraConfig {
                device: "/dev/video-ekspresi-missing".into(),
                ..Default::default()
            },
            ..KioskConfig::default()
        };
        let model = crate::models::resolve(None).unwrap();
        let results = run_checks(
            &NoBoard,
            &config,
            &model,
            &CheckOptions {
                camera: true,
                gpio: false,
                storage: true,
                models: None,
                broker: false,
                speed: true,
            },
        );
        let by_name = |n| results.iter().find(|r| r.name == n).unwrap();
        assert!(by_name("model").ok, "{:?}", by_name("model"));
        assert!(by_name("cascade").ok);
        assert!(by_name("storage").ok, "{:?}", by_name("storage"));
        assert!(by_name("video").detail.contains("IN THE CLEAR"));
        // Every listed model timed as int8 and as its fp32 twin, with tract's kernels.
        let speed = by_name("speed");
        assert!(speed.ok, "{speed:?}");
        let listed = Installed::find().unwrap().manifest.models.len();
        assert_eq!(speed.timings.len(), 2 * listed, "{speed:?}");
        for timing in &speed.timings {
            assert!(timing.median_us_per_face > 0.0 && timing.median_us_per_face.is_finite());
            let integer = timing.kernels.iter().any(|k| k.contains("mmm_i32"));
            assert_eq!(integer, timing.precision == "int8", "{timing:?}");
        }
        let camera = by_name("camera");
        assert!(!camera.ok);
        assert!(
            camera.detail.contains("no camera or GPIO support"),
            "{}",
            camera.detail
        );

        let broken = run_checks(
            &NoBoard,
            &config,
            Path::new("/nonexistent/model.onnx"),
            &CheckOptions {
                camera: false,
                gpio: false,
                storage: true,
                models: None,
                broker: false,
                speed: false,
            },
        );
        assert!(!broken.iter().find(|r| r.name == "model").unwrap().ok);

        // A model file cut in half (an interrupted copy onto the SD card) fails clearly.
        let bytes = std::fs::read(&model).unwrap();
        let truncated = config.data_dir.join("truncated.onnx");
        std::fs::write(&truncated, &bytes[..bytes.len() / 2]).unwrap();
        let results = run_checks(
            &NoBoard,
            &config,
            &truncated,
            &CheckOptions {
                camera: false,
                gpio: false,
                storage: true,
                models: None,
                broker: false,
                speed: false,
            },
        );
        let model_check = results.iter().find(|r| r.name == "model").unwrap();
        assert!(!model_check.ok);
        assert!(
            model_check.detail.contains("not a loadable ONNX model"),
            "{}",
            model_check.detail
        );
        let _ = std::fs::remove_dir_all(&config.data_dir);
    }
}
