//! Any video ffmpeg can read (AVI, MPEG-4 part 2, H.264 High profile, plain MP4s, MKV, …),
//! for `replay` of recordings the kiosk did not make. `ffprobe` gives the size and frame
//! rate; `ffmpeg` decodes to raw RGB on a pipe, one frame at a time, so a long lesson is
//! never held in memory. The system's ffmpeg is used rather than linked: it reads every
//! format and codec, and the Pi build stays free of it (the kiosk's own recordings replay
//! through `Mp4Source`, which needs nothing).
//!
//! Every decoded frame is analysed once, at its own time: ffmpeg passes the decoder's frames
//! through (`-fps_mode passthrough`; its default constant-rate output duplicated frames —
//! 271 from a 270-frame AVI, 90 from a 26-frame variable-rate clip), and a second process,
//! ffprobe, lists the same frames' timestamps, read one line per frame alongside. Times
//! count from the first frame and are bounded by [`crate::limits`]. The container's
//! `creation_time`, when it has a plausible one, dates the lesson (see
//! [`FrameSource::recorded_at`]).
//!
//! File names never reach either tool: they read this process's open descriptor of the file
//! (`/proc/<pid>/fd/<n>`), so a name like `-i`, `pipe:0` or `seq/%d.png` is that file and
//! nothing else, and only a regular file is read. Pictures larger than the recorder's
//! [`MAX_RECORD_WIDTH`]×[`MAX_RECORD_HEIGHT`] are scaled down to fit by ffmpeg (said in
//! the description); pictures smaller than the detector's window are refused up front.
//!
//! A stream that ends in the middle of a frame, an ffmpeg that exits with an error, or one
//! that reports an error and exits 0 anyway (as it does on a truncated file) is an error
//! after the frames that decoded — never a quietly shorter "complete" lesson.

#![deny(clippy::arithmetic_side_effects, clippy::cast_possible_truncation)]

use std::ffi::OsString;
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::time::{Duration, SystemTime};

use crate::devices::{Frame, FrameSource, SourceError};
use crate::limits::frame_time_in_bounds;

/// The largest frame side accepted from a file (an 8K frame's width).
const MAX_SIDE: usize = 7680;

/// The largest picture the H.264 recorder takes (OpenH264's level 5.2 frame size); a larger
/// video is scaled down to fit.
pub const MAX_RECORD_WIDTH: usize = 3840;
pub const MAX_RECORD_HEIGHT: usize = 2160;

/// The smallest picture worth analysing: the detector's window (24×24) must fit.
pub const MIN_SIDE: usize = 24;

/// Creation times outside these years are not believed (a lesson is dated "unknown").
const PLAUSIBLE_YEARS: std::ops::RangeInclusive<u64> = 2000..=2100;

/// A video decoded by the system's ffmpeg.
pub struct FfmpegSource {
    path: PathBuf,
    /// The open file the tools read (see [`OpenInput`]).
    _input: OpenInput,
    child: Child,
    stdout: ChildStdout,
    /// ffprobe listing the same frames' timestamps, one line per frame.
    times: FrameTimes,
    /// ffmpeg's error output, in a file so a chatty decoder can never block on a full pipe.
    errors: std::fs::File,
    width: usize,
    height: usize,
    /// The file's own size, when it was scaled down to fit the recorder.
    scaled_from: Option<(usize, usize)>,
    fps: f64,
    frames: u64,
    created: Option<SystemTime>,
}

/// The file as ffmpeg and ffprobe are given it: this process's open descriptor of it, as a
/// `file:` URL of `/proc/<pid>/fd/<n>`. The name a desk or a user chose never reaches them —
/// not as an option (`-i`), a protocol (`pipe:0`), nor an image-sequence pattern or an
/// extension that picks a demuxer (`seq/%d.png`) — so they probe the content, and they read
/// the very file that was checked to be a regular one (no swap in between).
struct OpenInput {
    /// Held open while the tools run: the `/proc` path names it.
    _file: std::fs::File,
    url: OsString,
}

impl OpenInput {
    fn open(path: &Path) -> Result<Self, String> {
        // stat before open: opening a FIFO would block until a writer came.
        let kind = std::fs::metadata(path)
            .map_err(|e| e.to_string())?
            .file_type();
        if !kind.is_file() {
            return Err("not a regular file (a pipe, device or socket is not replayed)".into());
        }
        let file = std::fs::File::open(path).map_err(|e| e.to_string())?;
        if !file.metadata().map_err(|e| e.to_string())?.is_file() {
            return Err("not a regular file".into());
        }
        let url = OsString::from(format!(
            "file:/proc/{}/fd/{}",
            std::process::id(),
            std::os::fd::AsRawFd::as_raw_fd(&file)
        ));
        Ok(Self { _file: file, url })
    }
}

impl FfmpegSource {
    /// Probes `path` and starts decoding it.
    pub fn open(path: &Path) -> Result<Self, SourceError> {
        let error = |reason: String| SourceError::File {
            path: path.display().to_string(),
            reason,
        };
        let input = OpenInput::open(path).map_err(error)?;
        let probed = probe(&input.url).map_err(error)?;
        let (width, height) = recorded_size(probed.width, probed.height).map_err(error)?;
        let errors = tempfile::tempfile().map_err(|e| error(format!("temporary file: {e}")))?;
        let errors_for_child = errors
            .try_clone()
            .map_err(|e| error(format!("temporary file: {e}")))?;
        let mut child = Command::new("ffmpeg")
            .args(["-v", "error", "-nostdin", "-i"])
            .arg(&input.url)
            .args(["-map", "0:v:0", "-fps_mode", "passthrough", "-vf"])
            .arg(picture_filter(
                (probed.width, probed.height),
                (width, height),
            ))
            .args(["-f", "rawvideo", "-pix_fmt", "rgb24", "pipe:1"])
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
        let times = FrameTimes::start(&input.url, probed.fps).map_err(error)?;
        let scaled = (width, height) != (probed.width & !1, probed.height & !1);
        Ok(Self {
            path: path.to_owned(),
            _input: input,
            child,
            stdout,
            times,
            errors,
            width,
            height,
            scaled_from: scaled.then_some((probed.width, probed.height)),
            fps: probed.fps,
            frames: 0,
            created: probed.created,
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

/// What ffprobe says of the first video stream and the container.
struct Probed {
    width: usize,
    height: usize,
    fps: f64,
    /// The container's `creation_time`, when plausible.
    created: Option<SystemTime>,
}

/// The size frames are analysed and recorded at: even sides (the H.264 recorder's), scaled
/// down to fit [`MAX_RECORD_WIDTH`]×[`MAX_RECORD_HEIGHT`] keeping the aspect; a picture
/// under [`MIN_SIDE`] is refused, since no face can be found in it.
fn recorded_size(width: usize, height: usize) -> Result<(usize, usize), String> {
    if width < MIN_SIDE || height < MIN_SIDE {
        return Err(format!(
            "the video is {width}×{height}: too small to find a face in (at least \
             {MIN_SIDE}×{MIN_SIDE} pixels)"
        ));
    }
    // Sides are at most MAX_SIDE (probe), so these products cannot overflow.
    let shrink = f64::max(
        width as f64 / MAX_RECORD_WIDTH as f64,
        height as f64 / MAX_RECORD_HEIGHT as f64,
    )
    .max(1.0);
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    let fit = |side: usize| ((side as f64 / shrink).floor() as usize).max(MIN_SIDE) & !1;
    Ok((fit(width), fit(height)))
}

/// ffmpeg's picture filter: a crop to even sides, or a scale down to `to`.
fn picture_filter(from: (usize, usize), to: (usize, usize)) -> String {
    if (from.0 & !1, from.1 & !1) == to {
        format!("crop={}:{}:0:0", to.0, to.1)
    } else {
        format!("scale={}:{}", to.0, to.1)
    }
}

/// Size, frame rate and creation time of the first video stream, from ffprobe's JSON.
fn probe(input: &OsString) -> Result<Probed, String> {
    let output = Command::new("ffprobe")
        .args(["-v", "error", "-select_streams", "v:0", "-show_entries"])
        .args([
            "stream=width,height,avg_frame_rate,r_frame_rate:format_tags=creation_time",
            "-of",
            "json",
        ])
        .arg(input)
        .stdin(Stdio::null())
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
    let created = json["format"]["tags"]["creation_time"]
        .as_str()
        .and_then(plausible_time);
    Ok(Probed {
        width: side("width")?,
        height: side("height")?,
        fps,
        created,
    })
}

/// A container's `creation_time` ("2026-11-02T09:00:00.000000Z"), if it is one and lies in
/// [`PLAUSIBLE_YEARS`] (encoders write 1970 or 1904 for "unset").
fn plausible_time(text: &str) -> Option<SystemTime> {
    let time = humantime::parse_rfc3339_weak(text.trim_end_matches('Z')).ok()?;
    let seconds = time.duration_since(SystemTime::UNIX_EPOCH).ok()?.as_secs();
    let year = (seconds / 31_556_952).saturating_add(1970);
    PLAUSIBLE_YEARS.contains(&year).then_some(time)
}

/// ffprobe listing the decoded frames' timestamps as they are read, one line per frame, in
/// the order ffmpeg passes them through.
struct FrameTimes {
    child: Child,
    lines: BufReader<ChildStdout>,
    line: String,
    fps: f64,
    /// The first frame's timestamp in the stream (times count from it), and the last given.
    first: Option<f64>,
    last: Option<Duration>,
}

impl FrameTimes {
    fn start(input: &OsString, fps: f64) -> Result<Self, String> {
        let mut child = Command::new("ffprobe")
            .args(["-v", "quiet", "-select_streams", "v:0", "-show_entries"])
            // `compact` names each line's section: a frame's own line starts "frame|", and
            // side data (x264's SEI, for one) never passes for a frame.
            .args(["frame=best_effort_timestamp_time", "-of", "compact"])
            .arg(input)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| {
                format!("cannot run ffprobe (install ffmpeg to replay this format): {e}")
            })?;
        let stdout = child.stdout.take().ok_or("ffprobe gave no output pipe")?;
        Ok(Self {
            child,
            lines: BufReader::new(stdout),
            line: String::new(),
            fps,
            first: None,
            last: None,
        })
    }

    /// The next frame's time since the first frame: its own timestamp when ffprobe gives
    /// one, else one frame period after the last; never earlier than the last.
    fn next(&mut self) -> Result<Duration, String> {
        let stamp = self.next_stamp()?;
        let period = Duration::from_secs_f64(1.0 / self.fps);
        let after_last = self
            .last
            .map_or(Duration::ZERO, |last| last.saturating_add(period));
        let time = match stamp {
            None => after_last,
            Some(stamp) => {
                let first = *self.first.get_or_insert(stamp);
                let since_first =
                    frame_time_in_bounds((stamp - first).max(0.0)).ok_or_else(|| {
                        format!("a frame stamped {stamp} s is past the longest lesson")
                    })?;
                since_first.max(self.last.unwrap_or(Duration::ZERO))
            }
        };
        frame_time_in_bounds(time.as_secs_f64())
            .ok_or_else(|| format!("a frame at {} s is past the longest lesson", time.as_secs()))?;
        self.last = Some(time);
        Ok(time)
    }
}

impl FrameTimes {
    /// The next `frame|best_effort_timestamp_time=T` line's `T`, if it is a number (`N/A`
    /// and the end of ffprobe's output are `None`); other sections' lines are skipped.
    fn next_stamp(&mut self) -> Result<Option<f64>, String> {
        loop {
            self.line.clear();
            // Bounded reads: a long line comes in pieces, which are not frame lines.
            let read = (&mut self.lines)
                .take(256)
                .read_line(&mut self.line)
                .map_err(|e| format!("frame times from ffprobe: {e}"))?;
            if read == 0 {
                return Ok(None);
            }
            if let Some(fields) = self.line.trim_end().strip_prefix("frame|") {
                return Ok(fields
                    .split('|')
                    .find_map(|f| f.strip_prefix("best_effort_timestamp_time="))
                    .and_then(|t| t.parse::<f64>().ok())
                    .filter(|t| t.is_finite()));
            }
        }
    }
}

impl Drop for FrameTimes {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
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
        // Sides are at most MAX_SIDE (probe): 7680² × 3 fits any usize of 32 bits and more.
        let bytes = self
            .width
            .checked_mul(self.height)
            .and_then(|pixels| pixels.checked_mul(3))
            .ok_or_else(|| self.error("frame size overflows"))?;
        let mut rgb = vec![0u8; bytes];
        let mut filled = 0;
        while filled < rgb.len() {
            match self.stdout.read(&mut rgb[filled..]) {
                Ok(0) => break,
                Ok(n) => filled = filled.saturating_add(n),
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
        let timestamp = self.times.next().map_err(|e| self.error(e))?;
        self.frames = self.frames.saturating_add(1);
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
        let scaled = self
            .scaled_from
            .map(|(w, h)| format!(", scaled down from {w}×{h} to fit the recorder"))
            .unwrap_or_default();
        format!(
            "{} (ffmpeg, {}×{} at {:.2} fps{scaled})",
            self.path.display(),
            self.width,
            self.height,
            self.fps
        )
    }

    fn recorded_at(&self) -> Option<SystemTime> {
        self.created
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
#[allow(clippy::arithmetic_side_effects, clippy::cast_possible_truncation)] // test inputs
mod tests {
    use super::*;

    #[test]
    fn pictures_are_scaled_to_fit_the_recorder_and_tiny_ones_refused() {
        assert_eq!(recorded_size(640, 480), Ok((640, 480)));
        assert_eq!(recorded_size(641, 481), Ok((640, 480)));
        assert_eq!(recorded_size(3840, 2160), Ok((3840, 2160)));
        assert_eq!(recorded_size(7680, 4320), Ok((3840, 2160)));
        assert_eq!(recorded_size(4096, 2160), Ok((3840, 2024)));
        assert_eq!(recorded_size(7680, 24), Ok((3840, 24)));
        for (w, h) in [(2, 2), (23, 480), (640, 2)] {
            let error = recorded_size(w, h).unwrap_err();
            assert!(error.contains("too small"), "{error}");
        }
        assert_eq!(picture_filter((641, 481), (640, 480)), "crop=640:480:0:0");
        assert_eq!(
            picture_filter((7680, 4320), (3840, 2160)),
            "scale=3840:2160"
        );
    }

    #[test]
    fn creation_times_are_believed_only_when_plausible() {
        let time = plausible_time("2026-11-02T09:00:00.000000Z").unwrap();
        assert_eq!(
            humantime::format_rfc3339_seconds(time).to_string(),
            "2026-11-02T09:00:00Z"
        );
        for bad in [
            "1970-01-01T00:00:00.000000Z",
            "1904-01-01T00:00:00Z",
            "9999-12-31T23:59:59Z",
            "",
            "yesterday",
        ] {
            assert_eq!(plausible_time(bad), None, "{bad}");
        }
    }

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
