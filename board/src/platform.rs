//! Facts about the machine the kiosk runs on, for `kiosk check`: is it a Raspberry Pi, and
//! is the process running under libcamera's V4L2 compatibility layer.

/// The board model from the device tree (`Raspberry Pi 4 Model B Rev 1.4`), if any.
pub fn board_model() -> Option<String> {
    let raw = std::fs::read("/proc/device-tree/model").ok()?;
    let text = String::from_utf8_lossy(&raw);
    Some(text.trim_end_matches('\0').trim().to_owned())
}

/// True when `libcamerify` (or a manual `LD_PRELOAD`) loaded libcamera's `v4l2-compat.so`.
pub fn libcamera_compat_active() -> bool {
    preload_has_compat(std::env::var("LD_PRELOAD").ok().as_deref())
}

/// Where Debian / Raspberry Pi OS install libcamera's V4L2 compatibility library
/// (package `libcamera-v4l2`).
const V4L2_COMPAT_CANDIDATES: &[&str] = &[
    "/usr/lib/aarch64-linux-gnu/libcamera/v4l2-compat.so",
    "/usr/lib/arm-linux-gnueabihf/libcamera/v4l2-compat.so",
    "/usr/libexec/libcamera/v4l2-compat.so",
    "/usr/lib/libcamera/v4l2-compat.so",
];

/// The installed `v4l2-compat.so`, if any.
pub fn v4l2_compat_library() -> Option<std::path::PathBuf> {
    V4L2_COMPAT_CANDIDATES
        .iter()
        .map(std::path::PathBuf::from)
        .find(|p| p.exists())
}

fn preload_has_compat(preload: Option<&str>) -> bool {
    preload.is_some_and(|p| p.contains("v4l2-compat"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compat_layer_is_recognised_from_ld_preload() {
        assert!(preload_has_compat(Some(
            "/usr/lib/aarch64-linux-gnu/libcamera/v4l2-compat.so"
        )));
        assert!(!preload_has_compat(Some("/usr/lib/libfoo.so")));
        assert!(!preload_has_compat(None));
    }
}
