//! Still-image frame sources for the demo, tests and re-analysis: a folder of frames
//! (PNG/JPEG, played in name order) with an optional `clip.json` giving its frame rate, or the
//! same held in memory (the built-in demo clip, [`super::demo`]).

#![deny(clippy::arithmetic_side_effects, clippy::cast_possible_truncation)]

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::devices::{Frame, FrameSource, SourceError};

/// Plays still images as a clip, one frame per image at a fixed rate.
pub struct ImageFolderSource {
    /// What `describe` calls the clip.
    name: String,
    stills: Stills,
    next: usize,
    fps: f64,
}

/// Where the stills come from.
enum Stills {
    /// Image files, in name order.
    Files(Vec<PathBuf>),
    /// Encoded images held in the binary (the built-in demo clip).
    Embedded(&'static [&'static [u8]]),
}

#[derive(serde::Deserialize)]
struct ClipInfo {
    fps: f64,
}

/// The frame rate a `clip.json` gives, checked: 0.1 fps is one frame every 10 s; anything
/// slower, or 1e-300, is not a video (and would overflow the frame times).
fn clip_fps(clip_json: &str) -> Result<f64, String> {
    let fps = serde_json::from_str::<ClipInfo>(clip_json)
        .map_err(|e| format!("clip.json: {e}"))?
        .fps;
    check_fps(fps)
}

fn check_fps(fps: f64) -> Result<f64, String> {
    if (0.1..=240.0).contains(&fps) {
        Ok(fps)
    } else {
        Err(format!("frame rate {fps} is not in 0.1..240"))
    }
}

impl ImageFolderSource {
    pub fn open(dir: &Path, default_fps: f64) -> Result<Self, SourceError> {
        let error = |reason: String| SourceError::File {
            path: dir.display().to_string(),
            reason,
        };
        let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
            .map_err(|e| error(e.to_string()))?
            .filter_map(|entry| entry.ok().map(|e| e.path()))
            .filter(|p| {
                p.extension().and_then(|e| e.to_str()).is_some_and(|e| {
                    matches!(e.to_ascii_lowercase().as_str(), "png" | "jpg" | "jpeg")
                })
            })
            .collect();
        files.sort();
        if files.is_empty() {
            return Err(error("no PNG or JPEG frames in the folder".into()));
        }
        let fps = match std::fs::read_to_string(dir.join("clip.json")) {
            Ok(text) => clip_fps(&text).map_err(error)?,
            Err(_) => {
                tracing::warn!(folder = %dir.display(), fps = default_fps, "no clip.json: assuming this frame rate");
                check_fps(default_fps).map_err(error)?
            }
        };
        Ok(Self {
            name: dir.display().to_string(),
            stills: Stills::Files(files),
            next: 0,
            fps,
        })
    }

    /// Encoded images held in memory, at the rate their `clip_json` gives.
    pub fn embedded(
        name: &str,
        images: &'static [&'static [u8]],
        clip_json: &str,
    ) -> Result<Self, SourceError> {
        let fps = clip_fps(clip_json).map_err(|reason| SourceError::File {
            path: name.to_owned(),
            reason,
        })?;
        Ok(Self {
            name: name.to_owned(),
            stills: Stills::Embedded(images),
            next: 0,
            fps,
        })
    }

    pub fn len(&self) -> usize {
        match &self.stills {
            Stills::Files(files) => files.len(),
            Stills::Embedded(images) => images.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Decodes still `index`; `None` past the last.
    fn decode(&self, index: usize) -> Option<Result<image::RgbImage, SourceError>> {
        let error = |path: String, e: image::ImageError| SourceError::File {
            path,
            reason: e.to_string(),
        };
        let decoded = match &self.stills {
            Stills::Files(files) => {
                let path = files.get(index)?;
                image::open(path).map_err(|e| error(path.display().to_string(), e))
            }
            Stills::Embedded(images) => image::load_from_memory(images.get(index)?)
                .map_err(|e| error(format!("{} frame {index}", self.name), e)),
        };
        Some(decoded.map(|image| image.into_rgb8()))
    }
}

impl FrameSource for ImageFolderSource {
    fn next_frame(&mut self) -> Result<Option<Frame>, SourceError> {
        let Some(image) = self.decode(self.next).transpose()? else {
            return Ok(None);
        };
        let timestamp = Duration::from_secs_f64(self.next as f64 / self.fps);
        self.next = self.next.saturating_add(1);
        Ok(Some(Frame::from_image(image, timestamp)))
    }

    fn frame_rate(&self) -> f64 {
        self.fps
    }

    fn is_live(&self) -> bool {
        false
    }

    fn describe(&self) -> String {
        format!("{} ({} frames at {} fps)", self.name, self.len(), self.fps)
    }
}
