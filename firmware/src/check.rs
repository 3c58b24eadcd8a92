//! `kiosk check`: the technician's self-test. Each check runs independently and reports
//! ok / FAIL with a reason, so one command tells what works on a freshly flashed desk:
//! config, model (loads, and gives probabilities summing to 1), cascade, storage (writable,
//! free space over the floor), camera (opens and delivers a frame, and through which path:
//! plain V4L2 or libcamera's compatibility layer), and GPIO (claims the three LED pins and
//! blinks them once).

use std::path::Path;
use std::time::Duration;

use ekspresi_common::model::ExpressionModel;
use serde::Serialize;

use crate::config::KioskConfig;
use crate::detect::Cascade;
use crate::hal::FrameSource;
use crate::source::CameraSource;

/// One line of the self-test.
#[derive(Debug, Serialize)]
pub struct CheckResult {
    pub name: &'static str,
    pub ok: bool,
    pub detail: String,
}

/// What to check.
pub struct CheckOptions {
    pub camera: bool,
    pub gpio: bool,
}

/// Runs every check; never stops at the first failure.
pub fn run_checks(config: &KioskConfig, model: &Path, options: &CheckOptions) -> Vec<CheckResult> {
    let mut results = vec![
        result("config", config.validate().map(|_| "valid".to_owned())),
        result("model", check_model(model)),
        result(
            "cascade",
            Cascade::frontal_face().map(|c| format!("{} stages", c.stages.len())),
        ),
        result("storage", check_storage(config)),
    ];
    results.push(CheckResult {
        name: "platform",
        ok: true,
        detail: platform_detail(),
    });
    if options.camera {
        results.push(result("camera", check_camera(config)));
    }
    if options.gpio {
        results.push(result("gpio", check_gpio(config)));
    }
    results
}

fn result<E: std::fmt::Display>(name: &'static str, outcome: Result<String, E>) -> CheckResult {
    match outcome {
        Ok(detail) => CheckResult {
            name,
            ok: true,
            detail,
        },
        Err(error) => CheckResult {
            name,
            ok: false,
            detail: error.to_string(),
        },
    }
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

fn platform_detail() -> String {
    let board = board::platform::board_model().unwrap_or_else(|| "not a Raspberry Pi".into());
    let path = if board::platform::libcamera_compat_active() {
        "camera through libcamera's V4L2 compatibility layer"
    } else {
        "camera through plain V4L2 (USB webcams; a Pi camera module needs libcamera_compat)"
    };
    format!("{board}; {path}")
}

fn check_camera(config: &KioskConfig) -> anyhow::Result<String> {
    let mut source = CameraSource::open(&config.camera)?;
    let frame = source
        .next_frame()?
        .ok_or_else(|| anyhow::anyhow!("no frame"))?;
    Ok(format!(
        "{}: got a {}×{} frame",
        source.describe(),
        frame.width,
        frame.height
    ))
}

fn check_gpio(config: &KioskConfig) -> anyhow::Result<String> {
    let map = config.gpio.pin_map();
    let pins = board::leds::open(map)?;
    let mut leds = crate::hal::StatusLeds::new(pins.good, pins.bad, pins.camera);
    // Light each LED for a moment so the technician can see the wiring is right.
    use crate::aggregate::Impression;
    for impression in [Impression::Good, Impression::Bad] {
        leds.show(Some(impression))?;
        std::thread::sleep(Duration::from_millis(400));
    }
    leds.show(None)?;
    leds.camera(true)?;
    std::thread::sleep(Duration::from_millis(400));
    leds.off()?;
    Ok(format!(
        "GPIO {} (good), {} (bad), {} (camera) blinked",
        map.good, map.bad, map.camera
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

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
            &config,
            &model,
            &CheckOptions {
                camera: true,
                gpio: false,
            },
        );
        let by_name = |n| results.iter().find(|r| r.name == n).unwrap();
        assert!(by_name("model").ok, "{:?}", by_name("model"));
        assert!(by_name("cascade").ok);
        assert!(by_name("storage").ok, "{:?}", by_name("storage"));
        let camera = by_name("camera");
        assert!(!camera.ok);
        assert!(
            camera.detail.contains("no such camera"),
            "{}",
            camera.detail
        );

        let broken = run_checks(
            &config,
            Path::new("/nonexistent/model.onnx"),
            &CheckOptions {
                camera: false,
                gpio: false,
            },
        );
        assert!(!broken.iter().find(|r| r.name == "model").unwrap().ok);

        // A model file cut in half (an interrupted copy onto the SD card) fails clearly.
        let bytes = std::fs::read(&model).unwrap();
        let truncated = config.data_dir.join("truncated.onnx");
        std::fs::write(&truncated, &bytes[..bytes.len() / 2]).unwrap();
        let results = run_checks(
            &config,
            &truncated,
            &CheckOptions {
                camera: false,
                gpio: false,
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
