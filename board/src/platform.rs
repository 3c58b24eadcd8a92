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
