//! Any video ffmpeg can read (AVI, MPEG-4 part 2, H.264 High profile, plain MP4s, MKV, …),
//! for `replay` of recordings the kiosk did not make. `ffprobe` gives the size and frame
//! rate; `ffmpeg` decodes to raw RGB on a pipe, one frame at a time, so a long lesson is
//! never held in memory. The system's ffmpeg is used rather than linked: it reads every
//! format and codec, and the Pi build stays free of it (the kiosk's own recordings replay
//! through `Mp4Source`, which needs nothing).
//!
//! Frame times are `index / frame rate` (the stream's average rate). A stream that ends in
//! the middle of a frame, an ffmpeg that exits with an error, or one that reports an error
//! and exits 0 anyway (as it does on a truncated file) is an error after the frames that
//! decoded — never a quietly shorter "complete" lesson.

use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::time::Duration;

use crate::devices::{Frame, FrameSource, SourceError};

/// The largest frame side accepted (an 8K frame's width).
const MAX_SIDE: usize = 7680;

/// A video decoded by the system's ffmpeg.
pub struct FfmpegSource {
    path: PathBuf,
    child: Child,
    stdout: ChildStdout,
    /// ffmpeg's error output, in a file so a chatty decoder can never block on a full pipe.
    errors: std::fs::File,
    width: usize,
    height: usize,
    fps: f64,
    frames: u64,
}

impl FfmpegSource {
    /// Probes `path` and starts decoding it.
    pub fn open(path: &Path) -> Result<Self, SourceError> {
        let error = |reason: String| SourceError::File {
            path: path.display().to_string(),
            reason,
        };
        let (width, height, fps) = probe(path).map_err(error)?;
        // Even sizes for the H.264 recorder: an odd last row or column is dropped.
        let (width, height) = (width & !1, height & !1);
        let errors = tempfile::tempfile().map_err(|e| error(format!("temporary file: {e}")))?;
        let errors_for_child = errors
            .try_clone()
            .map_err(|e| error(format!("temporary file: {e}")))?;
        let mut child = Command::new("ffmpeg")
            .args(["-v", "error", "-nostdin", "-i"])
            .arg(path)
            .args(["-map", "0:v:0", "-vf"])
            .arg(format!("crop={width}:{height}:0:0"))
            .args(["-f", "rawvideo", "-pix_fmt", "rgb24", "-"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(errors_for_child))
            .spawn()
            .map_err(|e| {
                error(format!(
                    "cannot run ffmpeg (install it to replay this format): {e}"
                ))
            })?;
        let stdout = child
            .stdout
            .take()
            .ok_or_else(|| error("ffmpeg gave no output pipe".into()))?;
        Ok(Self {
            path: path.to_owned(),
            child,
            stdout,
            errors,
            width,
            height,
            fps,
            frames: 0,
        })
    }

    fn error(&self, reason: impl std::fmt::Display) -> SourceError {
        SourceError::File {
            path: self.path.display().to_string(),
            reason: reason.to_string(),
        }
    }

    /// At the end of the pipe: the end of the video if ffmpeg succeeded *and* reported no
    /// error (it exits 0 on a truncated file, after saying "partial file"), else its error.
    fn finish(&mut self) -> Result<Option<Frame>, SourceError> {
        let status = self.child.wait().map_err(|e| self.error(e))?;
        let said = self.error_tail();
        if status.success() && said.is_empty() && self.frames > 0 {
            return Ok(None);
        }
        let last = said.lines().last().unwrap_or("no frames").to_owned();
        Err(self.error(format!("ffmpeg failed after frame {}: {last}", self.frames)))
    }
}

impl FfmpegSource {
    /// The end of what ffmpeg wrote to its error output (at `-v error`, only errors).
    fn error_tail(&mut self) -> String {
        let len = self.errors.metadata().map_or(0, |m| m.len());
        let mut tail = String::new();
        if self
            .errors
            .seek(SeekFrom::Start(len.saturating_sub(4096)))
            .is_ok()
        {
            let _ = (&mut self.errors).take(4096).read_to_string(&mut tail);
        }
        tail.trim().to_owned()
    }
}

/// (width, height, frames per second) of the first video stream, from ffprobe's JSON.
fn probe(path: &Path) -> Result<(usize, usize, f64), String> {
    let output = Command::new("ffprobe")
        .args(["-v", "error", "-select_streams", "v:0", "-show_entries"])
        .args([
            "stream=width,height,avg_frame_rate,r_frame_rate",
            "-of",
            "json",
        ])
        .arg(path)
        .output()
        .map_err(|e| format!("cannot run ffprobe (install ffmpeg to replay this format): {e}"))?;
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        return Err(format!(
            "not a video ffmpeg can read: {}",
            stderr.lines().last().unwrap_or("")
        ));
    }
    let json: serde_json::Value = serde_json::from_slice(&output.stdout)
        .map_err(|e| format!("ffprobe's answer is not JSON: {e}"))?;
    let stream = json["streams"]
        .get(0)
        .ok_or("no video stream in the file")?;
    let side = |key: &str| {
        stream[key]
            .as_u64()
            .and_then(|v| usize::try_from(v).ok())
            .filter(|&v| (2..=MAX_SIDE).contains(&v))
            .ok_or_else(|| format!("video {key} missing or outside 2..{MAX_SIDE}"))
    };
    let fps = [&stream["avg_frame_rate"], &stream["r_frame_rate"]]
        .iter()
        .filter_map(|rate| rate.as_str().and_then(parse_rate))
        .next()
        .ok_or("no usable frame rate (0.1 to 240 fps) in the stream")?;
    Ok((side("width")?, side("height")?, fps))
}

/// ffprobe's "num/den" rate, if it is a sane frame rate.
fn parse_rate(rate: &str) -> Option<f64> {
    let (num, den) = rate.split_once('/')?;
    let (num, den): (f64, f64) = (num.parse().ok()?, den.parse().ok()?);
    let fps = num / den;
    (fps.is_finite() && (0.1..=240.0).contains(&fps)).then_some(fps)
}

impl FrameSource for FfmpegSource {
    fn next_frame(&mut self) -> Result<Option<Frame>, SourceError> {
        let mut rgb = vec![0u8; self.width * self.height * 3];
        let mut filled = 0;
        while filled < rgb.len() {
            match self.stdout.read(&mut rgb[filled..]) {
                Ok(0) => break,
                Ok(n) => filled += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(self.error(e)),
            }
        }
        if filled == 0 {
            return self.finish();
        }
        if filled < rgb.len() {
            return Err(self.error(format!(
                "input ended early after frame {} (a partial frame)",
                self.frames
            )));
        }
        let timestamp = Duration::from_secs_f64(self.frames as f64 / self.fps);
        self.frames += 1;
        Frame::new(self.width, self.height, rgb, timestamp)
            .map(Some)
            .map_err(|e| self.error(e))
    }

    fn frame_rate(&self) -> f64 {
        self.fps
    }

    fn is_live(&self) -> bool {
        false
    }

    fn describe(&self) -> String {
        format!(
            "{} (ffmpeg, {}×{} at {:.2} fps)",
            self.path.display(),
            self.width,
            self.height,
            self.fps
        )
    }
}

impl Drop for FfmpegSource {
    fn drop(&mut self) {
        // A lesson stopped early leaves ffmpeg writing into a closed pipe: end it.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frame_rates_parse_only_when_sane() {
        assert_eq!(
            parse_rate("30000/1001").map(|f| (f * 1000.0).round()),
            Some(29970.0)
        );
        assert_eq!(parse_rate("6/1"), Some(6.0));
        for bad in ["0/0", "1/0", "1e-300/1", "1000/1", "x/1", "30"] {
            assert_eq!(parse_rate(bad), None, "{bad}");
        }
    }
}
