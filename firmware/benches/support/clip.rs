//! The real-time bench clip: 10 s (the scenes' seconds) of 640×480 video at 30 fps (300 frames), made once from the
//! public-domain stills of `tests/data/images/` and recorded as the kiosk records (H.264,
//! fragmented MP4), so the bench decodes what a replay decodes.
//!
//! It plays a student at a desk: a face that sways and leans in and out (the still panned and
//! zoomed along slow sine waves), a second of an empty desk (a face-free still), then a
//! second person. Every frame gets a little sensor noise (±4 grey levels), because a camera's
//! frames never repeat exactly and a noise-free clip would flatter the encoder.

use std::path::{Path, PathBuf};
use std::time::Duration;

use firmware::mp4::{PlainFile, VideoRecorder};
use image::RgbImage;

pub const FPS: u32 = 30;
pub const SIZE: (u32, u32) = (640, 480);

struct Scene {
    image: &'static str,
    seconds: u32,
    /// Mean zoom (1 = the still's height fills the frame) and its sway amplitude.
    zoom: (f32, f32),
    /// Horizontal sway of the still's centre, in pixels, and its period in seconds.
    sway: (f32, f32),
}

const SCENES: [Scene; 4] = [
    Scene {
        image: "grace_hopper.jpg",
        seconds: 4,
        zoom: (0.92, 0.06),
        sway: (40.0, 3.0),
    },
    Scene {
        image: "coffee.png",
        seconds: 1,
        zoom: (1.0, 0.0),
        sway: (0.0, 1.0),
    },
    Scene {
        image: "astronaut.png",
        seconds: 3,
        zoom: (0.95, 0.05),
        sway: (30.0, 2.5),
    },
    Scene {
        image: "grace_hopper.jpg",
        seconds: 2,
        zoom: (1.05, 0.05),
        sway: (25.0, 2.0),
    },
];

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The clip's path, recording it first when it is not there yet.
pub fn ensure(dir: &Path) -> PathBuf {
    ensure_repeated(dir, 1)
}

/// The clip played `repeats` times in one file (the noise goes on, so no frame repeats),
/// recorded first when it is not there yet: a longer replay separates the per-frame cost
/// from the process's fixed start-up and close.
pub fn ensure_repeated(dir: &Path, repeats: u32) -> PathBuf {
    let name = match repeats {
        1 => format!("bench-{}x{}-{FPS}fps.mp4", SIZE.0, SIZE.1),
        n => format!("bench-{}x{}-{FPS}fps-x{n}.mp4", SIZE.0, SIZE.1),
    };
    let path = dir.join(name);
    if !path.exists() {
        record(&path, repeats);
    }
    path
}

fn record(path: &Path, repeats: u32) {
    std::fs::create_dir_all(path.parent().expect("clip dir")).expect("clip dir");
    let partial = path.with_extension("mp4.partial");
    let sink = PlainFile::create(&partial).expect("clip file");
    let mut recorder = VideoRecorder::create(
        Box::new(sink),
        SIZE.0 as usize,
        SIZE.1 as usize,
        f64::from(FPS),
        Duration::from_secs(2),
    )
    .expect("recorder");
    let mut noise = 0x9E37_79B9_7F4A_7C15u64;
    let mut index = 0u32;
    for scene in (0..repeats).flat_map(|_| SCENES.iter()) {
        let still = image::open(workspace().join("tests/data/images").join(scene.image))
            .expect("still")
            .into_rgb8();
        for i in 0..scene.seconds * FPS {
            let t = i as f32 / FPS as f32;
            let phase = std::f32::consts::TAU * t / scene.sway.1;
            let zoom = scene.zoom.0 + scene.zoom.1 * (phase * 0.7).sin();
            let pan = scene.sway.0 * phase.sin();
            let mut frame = crate::scene::compose(&still, SIZE, zoom, pan);
            add_noise(&mut frame, &mut noise);
            let at = Duration::from_secs_f64(f64::from(index) / f64::from(FPS));
            recorder
                .write_rgb(frame.as_raw(), SIZE.0 as usize, SIZE.1 as usize, at)
                .expect("encode");
            index += 1;
        }
    }
    recorder.finish().expect("finish clip");
    std::fs::rename(&partial, path).expect("clip in place");
}

/// Adds ±4 levels of deterministic noise (xorshift64), the same to a pixel's three channels.
fn add_noise(frame: &mut RgbImage, state: &mut u64) {
    for pixel in frame.pixels_mut() {
        *state ^= *state << 13;
        *state ^= *state >> 7;
        *state ^= *state << 17;
        let delta = (*state % 9) as i16 - 4;
        for channel in &mut pixel.0 {
            *channel = (i16::from(*channel) + delta).clamp(0, 255) as u8;
        }
    }
}
