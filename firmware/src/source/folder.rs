//! File frame sources for the demo, tests and re-analysis: a folder of still frames
//! (PNG/JPEG, played in name order) with an optional `clip.json` giving its frame rate.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::hal::{Frame, FrameSource, SourceError};

/// Plays a folder of images as a clip.
pub struct ImageFolderSource {
    dir: PathBuf,
    files: Vec<PathBuf>,
    next: usize,
    fps: f64,
}

#[derive(serde::Deserialize)]
struct ClipInfo {
    fps: f64,
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
            Ok(text) => {
                serde_json::from_str::<ClipInfo>(&text)
                    .map_err(|e| error(format!("clip.json: {e}")))?
                    .fps
            }
            Err(_) => {
                tracing::warn!(folder = %dir.display(), fps = default_fps, "no clip.json: assuming this frame rate");
                default_fps
            }
        };
        // 0.1 fps is one frame every 10 s; anything slower, or 1e-300, is not a video (and
        // would overflow the frame times).
        if !(0.1..=240.0).contains(&fps) {
            return Err(error(format!("frame rate {fps} is not in 0.1..240")));
        }
        Ok(Self {
            dir: dir.to_owned(),
            files,
            next: 0,
            fps,
        })
    }

    pub fn len(&self) -> usize {
        self.files.len()
    }

    pub fn is_empty(&self) -> bool {
        self.files.is_empty()
    }
}

impl FrameSource for ImageFolderSource {
    fn next_frame(&mut self) -> Result<Option<Frame>, SourceError> {
        let Some(path) = self.files.get(self.next) else {
            return Ok(None);
        };
        let image = image::open(path)
            .map_err(|e| SourceError::File {
                path: path.display().to_string(),
                reason: e.to_string(),
            })?
            .into_rgb8();
        let timestamp = Duration::from_secs_f64(self.next as f64 / self.fps);
        self.next += 1;
        Ok(Some(Frame::from_image(image, timestamp)))
    }

    fn frame_rate(&self) -> f64 {
        self.fps
    }

    fn is_live(&self) -> bool {
        false
    }

    fn describe(&self) -> String {
        format!(
            "{} ({} frames at {} fps)",
            self.dir.display(),
            self.files.len(),
            self.fps
        )
    }
}
