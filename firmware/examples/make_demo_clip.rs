//! Recipe of the bundled demo clip (`firmware/assets/demo/`): public-domain stills from
//! `tests/data/images/` (see PROVENANCE.md there) composed into 640×480 frames with slow
//! zooms and pans, a stretch without any face, written as JPEG frames plus `clip.json`.
//!
//! Run: `cargo run --release -p firmware --example make_demo_clip`.

use std::path::Path;

#[path = "../benches/support/scene.rs"]
mod scene;

const FPS: u32 = 6;
const SIZE: (u32, u32) = (640, 480);

struct Scene {
    image: &'static str,
    seconds: u32,
    /// Zoom at the start and end (1 = the still's height fills the frame).
    zoom: (f32, f32),
    /// Horizontal offset of the still's centre, in pixels, at start and end.
    pan: (f32, f32),
}

const SCENES: [Scene; 4] = [
    Scene {
        image: "grace_hopper.jpg",
        seconds: 3,
        zoom: (0.85, 0.95),
        pan: (-40.0, 10.0),
    },
    Scene {
        image: "coffee.png",
        seconds: 1,
        zoom: (1.0, 1.0),
        pan: (0.0, 0.0),
    },
    Scene {
        image: "astronaut.png",
        seconds: 3,
        zoom: (0.9, 1.0),
        pan: (30.0, -20.0),
    },
    Scene {
        image: "camera.png",
        seconds: 1,
        zoom: (1.0, 1.0),
        pan: (0.0, 0.0),
    },
];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let images = root.join("../tests/data/images");
    let out = root.join("assets/demo");
    std::fs::create_dir_all(&out)?;
    for old in std::fs::read_dir(&out)? {
        let path = old?.path();
        if path.extension().is_some_and(|e| e == "jpg") {
            std::fs::remove_file(path)?;
        }
    }
    let mut index = 0;
    for scene in &SCENES {
        let still = image::open(images.join(scene.image))?.into_rgb8();
        let frames = scene.seconds * FPS;
        for i in 0..frames {
            let t = i as f32 / frames.max(2) as f32;
            let zoom = scene.zoom.0 + (scene.zoom.1 - scene.zoom.0) * t;
            let pan = scene.pan.0 + (scene.pan.1 - scene.pan.0) * t;
            let path = out.join(format!("frame_{index:04}.jpg"));
            let file = std::fs::File::create(&path)?;
            let mut encoder = image::codecs::jpeg::JpegEncoder::new_with_quality(file, 75);
            encoder.encode_image(&scene::compose(&still, SIZE, zoom, pan))?;
            index += 1;
        }
    }
    std::fs::write(out.join("clip.json"), format!("{{\"fps\": {FPS}}}\n"))?;
    println!("wrote {index} frames to {}", out.display());
    Ok(())
}
