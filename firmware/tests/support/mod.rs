//! Helpers the firmware's integration tests share.

pub mod broker;
#[allow(dead_code)] // only the hostile-desk test and the report bench use it
pub mod hostile;

use std::path::{Path, PathBuf};
use std::process::Command;

pub fn manifest_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// An empty folder `target/test-scratch/<name>` (emptied first).
pub fn scratch(name: &str) -> PathBuf {
    let dir = manifest_dir().join("../target/test-scratch").join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A fresh age key pair from the real `age-keygen`: (identity file, public recipient).
#[allow(dead_code)] // not every test binary uses every helper
pub fn age_keygen(dir: &Path) -> (PathBuf, String) {
    let identity = dir.join("school-key.txt");
    let output = Command::new("age-keygen")
        .arg("-o")
        .arg(&identity)
        .output()
        .expect("age-keygen is installed (scripts/test.sh installs the Debian package age)");
    assert!(output.status.success(), "age-keygen failed");
    let text = std::fs::read_to_string(&identity).unwrap();
    let recipient = text
        .lines()
        .find_map(|line| line.strip_prefix("# public key: "))
        .expect("age-keygen writes the public key as a comment")
        .to_owned();
    (identity, recipient)
}

/// Runs `body` on a fresh tmpfs of `size` (e.g. "4m") mounted at `target/test-scratch/<name>/card`,
/// as a small SD card; unmounts it whatever happens. Needs root.
#[allow(dead_code)]
pub fn on_tmpfs(name: &str, size: &str, body: impl FnOnce(&Path) + std::panic::UnwindSafe) {
    let mount = scratch(name).join("card");
    std::fs::create_dir_all(&mount).unwrap();
    let mounted = Command::new("mount")
        .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
        .arg(&mount)
        .status()
        .expect("mount runs");
    assert!(mounted.success(), "cannot mount a tmpfs (run as root)");
    let result = std::panic::catch_unwind(|| body(&mount));
    let _ = Command::new("umount").arg(&mount).status();
    if let Err(panic) = result {
        std::panic::resume_unwind(panic);
    }
}

/// ffmpeg must decode `video` without a single error message; `context` says which.
#[allow(dead_code)] // not every test file checks video
pub fn assert_decodes_cleanly(video: &Path, context: &str) {
    let decode = Command::new("ffmpeg")
        .args(["-v", "error", "-i"])
        .arg(video)
        .args(["-f", "null", "-"])
        .output()
        .expect("ffmpeg is installed");
    assert!(
        decode.status.success() && decode.stderr.is_empty(),
        "{context}: {} does not decode cleanly: {}",
        video.display(),
        String::from_utf8_lossy(&decode.stderr)
    );
}

/// (codec, frames) of the first video stream of `video`, by ffprobe counting the frames.
#[allow(dead_code)]
pub fn ffprobe_frames(video: &Path) -> (String, u64) {
    let output = Command::new("ffprobe")
        .args(["-v", "error", "-count_frames", "-select_streams", "v:0"])
        .args(["-show_entries", "stream=codec_name,nb_read_frames"])
        .args(["-of", "csv=p=0"])
        .arg(video)
        .output()
        .expect("ffprobe is installed (scripts/test.sh installs ffmpeg)");
    assert!(
        output.status.success(),
        "ffprobe: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let text = String::from_utf8_lossy(&output.stdout).trim().to_owned();
    let mut parts = text.split(',');
    let codec = parts.next().unwrap_or("").to_owned();
    let frames = parts.next().and_then(|n| n.parse().ok()).unwrap_or(0);
    (codec, frames)
}

/// The kiosk binary as a command; under emulation (`EKSPRESI_KIOSK_RUNNER=qemu-aarch64`,
/// set by board/scripts/cross.sh) it is started through the emulator like the tests are.
#[allow(dead_code)]
pub fn kiosk_command() -> Command {
    let kiosk = env!("CARGO_BIN_EXE_ekspresi");
    match std::env::var("EKSPRESI_KIOSK_RUNNER") {
        Ok(runner) if !runner.is_empty() => {
            let mut command = Command::new(runner);
            command.arg(kiosk);
            command
        }
        _ => Command::new(kiosk),
    }
}
