//! Crash-safe recording: annotated frames encoded to H.264 with OpenH264 and muxed into a
//! **fragmented MP4** (muxide's fragmented writer), one fragment per keyframe interval.
//!
//! Each fragment (`moof` + `mdat`) goes to a [`FragmentSink`] — a plain file, or age-encrypted
//! segments — and is stored durably before the next begins, so a power cut loses at most the
//! fragment being built. The MP4 header is held back and stored with the first fragment: a
//! header alone holds no picture, and an encrypted segment should decrypt to a playable file.
//!
//! Sample times are the frames' capture times, not `frames × frame time`: a live source that
//! drops frames leaves a gap in the video where the timeline has one. muxide derives sample
//! durations from the times we give it, but starts each fragment (`tfdt`) where its estimate
//! of the previous one ended; we overwrite that `tfdt` with the fragment's true first time
//! ([`set_fragment_start`]), so a gap at a fragment boundary is kept too.

use std::path::PathBuf;
use std::time::Duration;

use muxide::fragmented::{FragmentConfig, FragmentedMuxer};
use openh264::encoder::{Encoder, EncoderConfig, FrameType};
use openh264::formats::{RgbSliceU8, YUVBuffer};
use openh264::OpenH264API;

use super::sink::FragmentSink;

/// MP4 media timescale (ticks per second).
const TIMESCALE: u32 = 90_000;

/// Why recording failed.
#[derive(Debug, thiserror::Error)]
pub enum VideoError {
    #[error("video file {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("video encryption: {0}")]
    Seal(String),
    #[error("H.264 encoder: {0}")]
    Encoder(String),
    #[error("MP4 muxer: {0}")]
    Muxer(String),
    #[error("frame is {got:?}, the recording is {expected:?}")]
    FrameSize {
        expected: (usize, usize),
        got: (usize, usize),
    },
}

/// Writes an H.264 fragmented MP4, fragment by fragment.
pub struct VideoRecorder {
    sink: Box<dyn FragmentSink>,
    /// The MP4 header (`ftyp` + `moov`), until it is stored with the first fragment.
    header: Option<Vec<u8>>,
    encoder: Encoder,
    muxer: Option<FragmentedMuxer>,
    size: (usize, usize),
    keyframe_interval: Duration,
    /// Capture time at which the next frame is forced to be a keyframe.
    next_keyframe: Option<Duration>,
    /// Decode time of the last sample written, in [`TIMESCALE`] ticks.
    last_ticks: Option<u64>,
    /// Decode time of the first sample of the fragment being built.
    fragment_start: Option<u64>,
    frames: u64,
    yuv: YUVBuffer,
}

/// The recorder's OpenH264 settings for a nominal `fps`.
///
/// Rate control off: constant quality, every frame kept. (Quality mode with frame skipping
/// off cannot hold a bitrate anyway, and OpenH264 printed a warning saying so on every
/// start.) On the demo clip: 348 KB instead of 519 KB, no visible difference. Low
/// complexity: in three runs of the `pipeline_stages` bench it encoded a 640×480 frame in
/// 1.64–1.85 ms against 1.83–2.17 ms at medium, for 41.6 instead of 41.9 dB luma PSNR and
/// the same size; the CPU goes to the analysis.
pub fn encoder_config(fps: f64) -> EncoderConfig {
    EncoderConfig::new()
        .max_frame_rate(openh264::encoder::FrameRate::from_hz(fps as f32))
        .skip_frames(false)
        .rate_control_mode(openh264::encoder::RateControlMode::Off)
        .complexity(openh264::encoder::Complexity::Low)
}

impl VideoRecorder {
    /// Records frames of `width × height` (even numbers) at a nominal `fps` into `sink`, with a keyframe (and so a fragment) every
    /// `keyframe_interval` of capture time.
    pub fn create(
        sink: Box<dyn FragmentSink>,
        width: usize,
        height: usize,
        fps: f64,
        keyframe_interval: Duration,
    ) -> Result<Self, VideoError> {
        let config = encoder_config(fps);
        let encoder = Encoder::with_api_config(OpenH264API::from_source(), config)
            .map_err(|e| VideoError::Encoder(e.to_string()))?;
        Ok(Self {
            sink,
            header: None,
            encoder,
            muxer: None,
            size: (width, height),
            keyframe_interval,
            next_keyframe: None,
            last_ticks: None,
            fragment_start: None,
            frames: 0,
            yuv: YUVBuffer::new(width, height),
        })
    }

    /// Frames written so far.
    pub fn frames(&self) -> u64 {
        self.frames
    }

    /// Encodes one RGB frame captured `at` (time since the recording's first frame); at
    /// each keyframe the previous fragment goes to disk first.
    pub fn write_rgb(
        &mut self,
        rgb: &[u8],
        width: usize,
        height: usize,
        at: Duration,
    ) -> Result<(), VideoError> {
        if (width, height) != self.size {
            return Err(VideoError::FrameSize {
                expected: self.size,
                got: (width, height),
            });
        }
        if self.next_keyframe.is_none_or(|due| at >= due) {
            self.encoder.force_intra_frame();
            self.next_keyframe = Some(at.saturating_add(self.keyframe_interval));
        }
        self.yuv.read_rgb8(RgbSliceU8::new(rgb, (width, height)));
        let bitstream = self
            .encoder
            .encode(&self.yuv)
            .map_err(|e| VideoError::Encoder(e.to_string()))?;
        let is_keyframe = matches!(bitstream.frame_type(), FrameType::IDR | FrameType::I);
        let mut parameter_sets = (None, None);
        let mut sample = Vec::new();
        for layer in (0..bitstream.num_layers()).filter_map(|i| bitstream.layer(i)) {
            for nal in (0..layer.nal_count()).filter_map(|i| layer.nal_unit(i)) {
                let nal = strip_start_code(nal);
                match nal.first().map(|b| b & 0x1f) {
                    Some(7) => parameter_sets.0 = Some(nal.to_vec()),
                    Some(8) => parameter_sets.1 = Some(nal.to_vec()),
                    Some(_) => {
                        sample.extend_from_slice(&(nal.len() as u32).to_be_bytes());
                        sample.extend_from_slice(nal);
                    }
                    None => {}
                }
            }
        }
        if sample.is_empty() {
            // The encoder skipped this frame; keep the timeline by not advancing.
            return Ok(());
        }
        if self.muxer.is_none() {
            self.start(parameter_sets)?;
        } else if is_keyframe {
            self.flush_fragment()?;
        }
        let pts = self.ticks_after(at);
        self.last_ticks = Some(pts);
        self.fragment_start.get_or_insert(pts);
        if let Some(muxer) = self.muxer.as_mut() {
            muxer
                .write_video(pts, pts, &sample, is_keyframe)
                .map_err(|e| VideoError::Muxer(e.to_string()))?;
        }
        self.frames += 1;
        Ok(())
    }

    /// `at` in [`TIMESCALE`] ticks, always after the previous sample (a source's clock may
    /// repeat a time; two samples at one time would give one a zero duration).
    fn ticks_after(&self, at: Duration) -> u64 {
        let ticks = at.as_nanos().saturating_mul(u128::from(TIMESCALE)) / 1_000_000_000;
        let ticks = u64::try_from(ticks).unwrap_or(u64::MAX);
        match self.last_ticks {
            Some(last) if ticks <= last => last.saturating_add(1),
            _ => ticks,
        }
    }

    fn start(
        &mut self,
        parameter_sets: (Option<Vec<u8>>, Option<Vec<u8>>),
    ) -> Result<(), VideoError> {
        let (Some(sps), Some(pps)) = parameter_sets else {
            return Err(VideoError::Encoder("first frame carried no SPS/PPS".into()));
        };
        let mut config = FragmentConfig::new(self.size.0 as u32, self.size.1 as u32, TIMESCALE)
            .with_fragment_duration_ms(u32::MAX);
        config.sps = sps;
        config.pps = pps;
        let mut muxer =
            FragmentedMuxer::new(config).map_err(|e| VideoError::Muxer(e.to_string()))?;
        self.header = Some(muxer.init_segment());
        self.muxer = Some(muxer);
        Ok(())
    }

    fn flush_fragment(&mut self) -> Result<(), VideoError> {
        let segment = self.muxer.as_mut().and_then(FragmentedMuxer::flush_segment);
        if let Some(mut segment) = segment {
            if let Some(start) = self.fragment_start.take() {
                set_fragment_start(&mut segment, start)?;
            }
            let piece = match self.header.take() {
                Some(mut header) => {
                    header.extend_from_slice(&segment);
                    header
                }
                None => segment,
            };
            self.sink.store(&piece)?;
        }
        Ok(())
    }

    /// Stores the last fragment.
    pub fn finish(mut self) -> Result<u64, VideoError> {
        self.flush_fragment()?;
        Ok(self.frames)
    }
}

/// Sets the decode time (`moof/traf/tfdt`, version 1) of a media segment to `ticks`.
fn set_fragment_start(segment: &mut [u8], ticks: u64) -> Result<(), VideoError> {
    let missing = || VideoError::Muxer("media segment without moof/traf/tfdt v1".into());
    let moof = child_box(segment, b"moof").ok_or_else(missing)?;
    let traf = child_box(&segment[moof.clone()], b"traf").ok_or_else(missing)?;
    let traf = moof.start + traf.start..moof.start + traf.end;
    let tfdt = child_box(&segment[traf.clone()], b"tfdt").ok_or_else(missing)?;
    let payload = traf.start + tfdt.start..traf.start + tfdt.end;
    let version_one = segment[payload.clone()].first() == Some(&1);
    let time = segment
        .get_mut(payload.start + 4..payload.start + 12)
        .filter(|_| version_one)
        .ok_or_else(missing)?;
    time.copy_from_slice(&ticks.to_be_bytes());
    Ok(())
}

/// The payload range of the first box of `kind` among the boxes laid end to end in `bytes`
/// (32-bit sizes only: muxide writes nothing else into a fragment's header).
fn child_box(bytes: &[u8], kind: &[u8; 4]) -> Option<std::ops::Range<usize>> {
    let mut offset = 0usize;
    while let Some(header) = bytes.get(offset..offset.checked_add(8)?) {
        let size = u32::from_be_bytes(header[..4].try_into().ok()?) as usize;
        let end = offset
            .checked_add(size)
            .filter(|&e| size >= 8 && e <= bytes.len())?;
        if &header[4..8] == kind {
            return Some(offset + 8..end);
        }
        offset = end;
    }
    None
}

fn strip_start_code(nal: &[u8]) -> &[u8] {
    if nal.starts_with(&[0, 0, 0, 1]) {
        &nal[4..]
    } else if nal.starts_with(&[0, 0, 1]) {
        &nal[3..]
    } else {
        nal
    }
}
