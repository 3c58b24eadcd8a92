//! Replays the H.264 fragmented MP4s the kiosk itself records (Constrained Baseline, samples
//! in `moof`/`mdat` fragments), decoding with OpenH264, for re-analysis of a lesson. Any
//! other video — a plain MP4 with its samples in `moov`, another H.264 profile, another
//! codec — is refused at `open` with the reason, and `replay` hands it to ffmpeg
//! ([`crate::source::FfmpegSource`]).
//!
//! Why our own box walker: the `mp4` crate (0.14) returns wrong bytes from `read_sample` on
//! fragmented files, and the maintained alternatives we found refuse fragmented MP4. We only
//! need the few boxes our own writer emits (ftyp, moov → avcC + mdhd, moof → tfhd + trun,
//! mdat), so a small reader that checks every length against the file is the safer choice.
//! Samples are read one at a time with seeks, so a long lesson is never loaded whole.
//!
//! Frame times come from the file: each fragment starts at its `tfdt` decode time (the
//! writer keeps gaps there) and samples follow by their durations. A file cut short plays
//! its whole frames and then fails with "input ended early after frame N", so a truncated
//! recording is never taken for a complete one.

#![deny(clippy::arithmetic_side_effects, clippy::cast_possible_truncation)]

use std::collections::VecDeque;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use openh264::decoder::Decoder;
use openh264::formats::YUVSource;

use super::boxes::{box_at, BoxError, TopBox};
use crate::devices::{Frame, FrameSource, SourceError};

/// The most samples one fragment may list: 2^20 is over nine hours at 30 fps, far beyond
/// any fragment a recorder writes, and keeps a hostile count from allocating gigabytes.
const MAX_SAMPLES_PER_FRAGMENT: usize = 1 << 20;

/// One coded frame's place in the file and its decode time (in the track's timescale).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Sample {
    offset: u64,
    size: u32,
    duration: u32,
    time: u64,
}

/// Plays an H.264 MP4 as frames.
pub struct Mp4Source {
    path: PathBuf,
    file: File,
    file_len: u64,
    /// Where the next top-level box after the fragments read so far starts.
    next_box: u64,
    pending: VecDeque<Sample>,
    timescale: u32,
    default_duration: u32,
    /// Decode time after the last sample listed so far (where a fragment without `tfdt`
    /// starts).
    next_time: u64,
    /// Frames returned so far.
    frames: u64,
    decoder: Decoder,
    /// SPS and PPS (Annex-B), fed before the first sample.
    parameter_sets: Option<Vec<u8>>,
    annexb: Vec<u8>,
    fps: f64,
}

impl Mp4Source {
    pub fn open(path: &Path) -> Result<Self, SourceError> {
        let mut source = Self::open_header(path)?;
        // The rate is what the first fragment's sample durations say (trex may not).
        source.load_fragment()?;
        if source.pending.is_empty() {
            return Err(
                source.error("no fragmented samples (moof): not a recording the kiosk wrote")
            );
        }
        if let Some(first) = source.pending.front().filter(|s| s.duration > 0) {
            source.fps = f64::from(source.timescale) / f64::from(first.duration);
        }
        Ok(source)
    }

    /// Decodes only the fragment whose `moof` starts at `moof_start`, as the start-up repair's
    /// last check of a recording's tail: true when every sample in it decodes without an
    /// error. (The kiosk starts every fragment with a keyframe, so a fragment decodes alone.)
    /// A fragment that cannot be read, parsed or decoded is false, never an error.
    pub fn fragment_decodes(path: &Path, moof_start: u64) -> bool {
        let Ok(mut source) = Self::open_header(path) else {
            return false;
        };
        source.next_box = moof_start;
        if !matches!(source.load_fragment(), Ok(true)) {
            return false;
        }
        let samples = std::mem::take(&mut source.pending);
        samples
            .iter()
            .all(|&sample| source.decode_sample(sample).is_ok())
    }

    /// Opens the file and reads its track header (`moov`), before any fragment.
    fn open_header(path: &Path) -> Result<Self, SourceError> {
        let error = |reason: String| SourceError::File {
            path: path.display().to_string(),
            reason,
        };
        let mut file = File::open(path).map_err(|e| error(e.to_string()))?;
        let file_len = file.metadata().map_err(|e| error(e.to_string()))?.len();
        let (moov, after_moov) = find_top_box(&mut file, file_len, *b"moov")
            .map_err(|e| error(format!("no moov box: not an MP4 ({e})")))?
            .ok_or_else(|| error("no moov box: not an MP4 the kiosk wrote".into()))?;
        let track = TrackInfo::parse(&moov).map_err(error)?;
        let decoder = Decoder::new().map_err(|e| error(format!("H.264 decoder: {e}")))?;
        let fps = f64::from(track.timescale) / f64::from(track.default_duration.max(1));
        Ok(Self {
            path: path.to_owned(),
            file,
            file_len,
            next_box: after_moov,
            pending: VecDeque::new(),
            timescale: track.timescale,
            default_duration: track.default_duration,
            next_time: 0,
            frames: 0,
            decoder,
            parameter_sets: Some(track.parameter_sets),
            annexb: Vec::new(),
            fps,
        })
    }

    fn error(&self, reason: impl std::fmt::Display) -> SourceError {
        SourceError::File {
            path: self.path.display().to_string(),
            reason: reason.to_string(),
        }
    }

    fn ended_early(&self, reason: impl std::fmt::Display) -> SourceError {
        self.error(format!(
            "input ended early after frame {}: {reason}",
            self.frames
        ))
    }

    /// Reads top-level boxes until a fragment gives samples; false at the end of the file.
    fn load_fragment(&mut self) -> Result<bool, SourceError> {
        while self.pending.is_empty() {
            let top = match box_at(&mut self.file, self.next_box, self.file_len) {
                Ok(Some(top)) => top,
                Ok(None) => return Ok(false),
                Err(BoxError::Io { source, .. }) => return Err(self.error(source)),
                Err(error) => return Err(self.ended_early(error)),
            };
            let TopBox {
                kind, start, len, ..
            } = top;
            self.next_box = top.end();
            if kind == *b"moof" {
                let mut moof = vec![0; usize::try_from(len).map_err(|e| self.error(e))?];
                self.file
                    .seek(SeekFrom::Start(start))
                    .and_then(|_| self.file.read_exact(&mut moof))
                    .map_err(|e| self.error(e))?;
                let clock = (self.default_duration, self.next_time);
                let samples = parse_moof(&moof, start, clock).map_err(|e| self.error(e))?;
                let past_end = |s: &Sample| {
                    s.offset
                        .checked_add(u64::from(s.size))
                        .is_none_or(|end| end > self.file_len)
                };
                if samples.iter().any(past_end) {
                    // A fragment cut by a power cut (file not repaired yet).
                    return Err(self.ended_early("its last fragment's samples are cut short"));
                }
                if let Some(last) = samples.last() {
                    self.next_time = last.time.saturating_add(u64::from(last.duration));
                }
                self.pending.extend(samples);
            }
        }
        Ok(true)
    }

    fn decode_next(&mut self) -> Result<Option<Frame>, SourceError> {
        loop {
            if !self.load_fragment()? {
                return Ok(None);
            }
            let Some(sample) = self.pending.pop_front() else {
                return Ok(None);
            };
            if let Some(frame) = self.decode_sample(sample)? {
                self.frames = self.frames.saturating_add(1);
                return Ok(Some(frame));
            }
        }
    }

    /// Reads and decodes one sample: its picture, or `None` while the decoder has none yet.
    fn decode_sample(&mut self, sample: Sample) -> Result<Option<Frame>, SourceError> {
        let mut avcc = vec![0; sample.size as usize];
        self.file
            .seek(SeekFrom::Start(sample.offset))
            .and_then(|_| self.file.read_exact(&mut avcc))
            .map_err(|e| self.error(e))?;
        self.annexb.clear();
        if let Some(sets) = self.parameter_sets.take() {
            self.annexb.extend_from_slice(&sets);
        }
        avcc_to_annexb(&avcc, &mut self.annexb).map_err(|e| self.error(e))?;
        // timescale > 0 (TrackInfo::parse), so this is finite and not negative; a time past
        // the longest lesson (durations of 0xFFFFFFFF reach 10^9 s) is refused here, before
        // anything is sized by it.
        let seconds = sample.time as f64 / f64::from(self.timescale);
        let timestamp = crate::limits::frame_time_in_bounds(seconds).ok_or_else(|| {
            self.error(format!(
                "frame {} is stamped {seconds:.0} s into the recording, past the longest \
                 lesson ({} s): its sample durations or decode times are not a recording's",
                self.frames.saturating_add(1),
                crate::limits::MAX_LESSON_SECONDS
            ))
        })?;
        let path = &self.path;
        let decoded = self
            .decoder
            .decode(&self.annexb)
            .map_err(|e| SourceError::File {
                path: path.display().to_string(),
                reason: format!("H.264 decode: {e}"),
            })?;
        let Some(yuv) = decoded else {
            return Ok(None);
        };
        let (width, height) = yuv.dimensions();
        // The decoder's picture sizes are bounded by H.264 levels; checked all the same.
        let bytes = width
            .checked_mul(height)
            .and_then(|pixels| pixels.checked_mul(3))
            .ok_or_else(|| SourceError::File {
                path: path.display().to_string(),
                reason: format!("a {width}×{height} picture"),
            })?;
        let mut rgb = vec![0; bytes];
        yuv.write_rgb8(&mut rgb);
        Frame::new(width, height, rgb, timestamp)
            .map(Some)
            .map_err(|e| self.error(e))
    }
}

impl FrameSource for Mp4Source {
    fn next_frame(&mut self) -> Result<Option<Frame>, SourceError> {
        self.decode_next()
    }

    fn frame_rate(&self) -> f64 {
        self.fps
    }

    fn is_live(&self) -> bool {
        false
    }

    fn describe(&self) -> String {
        format!("MP4 {} ({:.1} fps)", self.path.display(), self.fps)
    }
}

/// `profile_idc` of the Baseline family, which the kiosk's OpenH264 encoder writes.
const CONSTRAINED_BASELINE: u8 = 66;

/// What the decoder needs from `moov`.
struct TrackInfo {
    timescale: u32,
    default_duration: u32,
    parameter_sets: Vec<u8>,
}

impl TrackInfo {
    fn parse(moov: &[u8]) -> Result<Self, String> {
        let trak = child(moov, b"trak").ok_or("moov has no trak")?;
        let mdia = child(trak, b"mdia").ok_or("trak has no mdia")?;
        let mdhd = child(mdia, b"mdhd").ok_or("mdia has no mdhd")?;
        // mdhd v0: version/flags 4, created 4, modified 4, timescale 4; v1: 8-byte times.
        let timescale_at = if mdhd.first() == Some(&1) { 20 } else { 12 };
        let timescale = read_u32(mdhd, timescale_at).ok_or("mdhd too short")?;
        if timescale == 0 {
            return Err("mdhd timescale is 0".into());
        }
        let stsd = child(mdia, b"minf")
            .and_then(|minf| child(minf, b"stbl"))
            .and_then(|stbl| child(stbl, b"stsd"))
            .ok_or("no stsd (sample description)")?;
        // stsd: version/flags 4, entry count 4, then the avc1 sample entry box.
        let avc1 = stsd
            .get(8..)
            .and_then(|rest| child(rest, b"avc1"))
            .ok_or("not an H.264 (avc1) track")?;
        // avc1 visual sample entry: 78 bytes of fields before its child boxes.
        let avcc = avc1
            .get(78..)
            .and_then(|rest| child(rest, b"avcC"))
            .ok_or("avc1 has no avcC")?;
        let default_duration = child(moov, b"mvex")
            .and_then(|mvex| child(mvex, b"trex"))
            .and_then(|trex| read_u32(trex, 12))
            .filter(|&d| d > 0)
            .unwrap_or(timescale / 10);
        // avcC: configurationVersion, then AVCProfileIndication.
        let profile = *avcc.get(1).ok_or("avcC record too short")?;
        if profile != CONSTRAINED_BASELINE {
            return Err(format!(
                "H.264 profile {profile}: the built-in decoder reads the kiosk's Constrained \
                 Baseline ({CONSTRAINED_BASELINE}) only"
            ));
        }
        Ok(Self {
            timescale,
            default_duration,
            parameter_sets: parameter_sets(avcc)?,
        })
    }
}

/// SPS and PPS NAL units of an `avcC` record, in Annex-B form.
fn parameter_sets(avcc: &[u8]) -> Result<Vec<u8>, String> {
    let short = || "avcC record too short".to_string();
    let mut out = Vec::new();
    let sps_count = usize::from(*avcc.get(5).ok_or_else(short)? & 0x1f);
    let mut at = 6;
    for _ in 0..sps_count {
        at = copy_nal(avcc, at, &mut out).ok_or_else(short)?;
    }
    let pps_count = usize::from(*avcc.get(at).ok_or_else(short)?);
    at = at.checked_add(1).ok_or_else(short)?;
    for _ in 0..pps_count {
        at = copy_nal(avcc, at, &mut out).ok_or_else(short)?;
    }
    Ok(out)
}

/// Copies the 16-bit-length-prefixed NAL at `at` as Annex-B; returns the position after it.
fn copy_nal(record: &[u8], at: usize, out: &mut Vec<u8>) -> Option<usize> {
    let start = at.checked_add(2)?;
    let len = usize::from(u16::from_be_bytes(record.get(at..start)?.try_into().ok()?));
    let end = start.checked_add(len)?;
    out.extend_from_slice(&[0, 0, 0, 1]);
    out.extend_from_slice(record.get(start..end)?);
    Some(end)
}

/// Rewrites 4-byte-length-prefixed NAL units (MP4 samples) as Annex-B start-code units.
fn avcc_to_annexb(sample: &[u8], out: &mut Vec<u8>) -> Result<(), String> {
    let mut rest = sample;
    while !rest.is_empty() {
        let len = read_u32(rest, 0).ok_or("truncated NAL length")?;
        let end = usize::try_from(len)
            .ok()
            .and_then(|len| len.checked_add(4))
            .filter(|&end| end <= rest.len())
            .ok_or("NAL unit runs past its sample")?;
        out.extend_from_slice(&[0, 0, 0, 1]);
        out.extend_from_slice(&rest[4..end]);
        rest = &rest[end..];
    }
    Ok(())
}

/// Samples of one `moof` (at file offset `moof_start`), from its first track fragment;
/// `clock` is the track's default sample duration and the decode time to start from when
/// the fragment has no `tfdt`.
fn parse_moof(moof: &[u8], moof_start: u64, clock: (u32, u64)) -> Result<Vec<Sample>, String> {
    let (trex_duration, mut time) = clock;
    let body = moof.get(8..).ok_or("moof too short")?;
    let traf = child(body, b"traf").ok_or("moof has no traf")?;
    let tfhd = child(traf, b"tfhd").ok_or("traf has no tfhd")?;
    if let Some(tfdt) = child(traf, b"tfdt") {
        time = if tfdt.first() == Some(&1) {
            read_u64(tfdt, 4)
        } else {
            read_u32(tfdt, 4).map(u64::from)
        }
        .ok_or("tfdt too short")?;
    }
    let trun = child(traf, b"trun").ok_or("traf has no trun")?;
    let defaults = FragmentDefaults::parse(tfhd, moof_start, trex_duration)?;
    parse_trun(trun, &defaults, time)
}

/// What a fragment's `tfhd` sets for its samples.
struct FragmentDefaults {
    /// Where sample offsets count from.
    base: u64,
    duration: u32,
    /// `None`: every sample must give its size.
    size: Option<u32>,
}

impl FragmentDefaults {
    fn parse(tfhd: &[u8], moof_start: u64, trex_duration: u32) -> Result<Self, String> {
        let flags = read_u32(tfhd, 0).ok_or("tfhd too short")? & 0xff_ffff;
        let mut at = 8; // version/flags, track id
        let mut base = moof_start;
        if flags & 0x1 != 0 {
            base = read_u64(tfhd, at).ok_or("tfhd too short")?;
            at = at.saturating_add(8);
        }
        if flags & 0x2 != 0 {
            at = at.saturating_add(4); // sample description index
        }
        let mut duration = trex_duration;
        if flags & 0x8 != 0 {
            duration = read_u32(tfhd, at).ok_or("tfhd too short")?;
            at = at.saturating_add(4);
        }
        let size = (flags & 0x10 != 0).then(|| read_u32(tfhd, at)).flatten();
        Ok(Self {
            base,
            duration,
            size,
        })
    }
}

/// The samples a `trun` lists, the first at `time`; every offset checked for overflow.
fn parse_trun(
    trun: &[u8],
    defaults: &FragmentDefaults,
    mut time: u64,
) -> Result<Vec<Sample>, String> {
    let flags = read_u32(trun, 0).ok_or("trun too short")? & 0xff_ffff;
    let count = read_u32(trun, 4).ok_or("trun too short")? as usize;
    if count > MAX_SAMPLES_PER_FRAGMENT {
        return Err(format!(
            "trun lists {count} samples (at most {MAX_SAMPLES_PER_FRAGMENT})"
        ));
    }
    let mut at = 8;
    let mut offset = defaults.base;
    if flags & 0x1 != 0 {
        let data_offset = read_u32(trun, at).ok_or("trun too short")? as i32;
        offset = defaults
            .base
            .checked_add_signed(i64::from(data_offset))
            .ok_or("bad data offset")?;
        at = at.saturating_add(4);
    }
    if flags & 0x4 != 0 {
        at = at.saturating_add(4); // first sample flags
    }
    let mut samples = Vec::with_capacity(count.min(1 << 16));
    for _ in 0..count {
        let mut field = |flag: u32| -> Result<Option<u32>, String> {
            if flags & flag == 0 {
                return Ok(None);
            }
            let value = read_u32(trun, at).ok_or("trun too short for its samples")?;
            at = at.saturating_add(4);
            Ok(Some(value))
        };
        let duration = field(0x100)?.unwrap_or(defaults.duration);
        let size = field(0x200)?
            .or(defaults.size)
            .ok_or("sample without a size")?;
        field(0x400)?; // sample flags
        field(0x800)?; // composition offset
        samples.push(Sample {
            offset,
            size,
            duration,
            time,
        });
        offset = offset
            .checked_add(u64::from(size))
            .ok_or("sample offsets overflow")?;
        time = time.saturating_add(u64::from(duration));
    }
    Ok(samples)
}

/// The payload of the first child box of `kind` in `parent` (a sequence of boxes).
fn child<'a>(parent: &'a [u8], kind: &[u8; 4]) -> Option<&'a [u8]> {
    let mut rest = parent;
    while rest.len() >= 8 {
        let len = read_u32(rest, 0)? as usize;
        if len < 8 || len > rest.len() {
            return None;
        }
        if &rest[4..8] == kind {
            return Some(&rest[8..len]);
        }
        rest = &rest[len..];
    }
    None
}

/// Finds the top-level box `kind`; returns its bytes and where the next box starts.
fn find_top_box(
    file: &mut File,
    file_len: u64,
    kind: [u8; 4],
) -> Result<Option<(Vec<u8>, u64)>, BoxError> {
    let mut at = 0;
    while let Some(top) = box_at(file, at, file_len)? {
        if top.kind == kind {
            let io = |source| BoxError::Io { offset: at, source };
            // len ≥ 8 and the box lies inside the file (box_at), so this is bounded by it.
            let mut bytes = vec![
                0;
                usize::try_from(top.len.saturating_sub(8))
                    .map_err(std::io::Error::other)
                    .map_err(io)?
            ];
            file.seek(SeekFrom::Start(top.start.saturating_add(8)))
                .map_err(io)?;
            file.read_exact(&mut bytes).map_err(io)?;
            return Ok(Some((bytes, top.end())));
        }
        at = top.end();
    }
    Ok(None)
}

fn read_u32(bytes: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_be_bytes(
        bytes.get(at..at.checked_add(4)?)?.try_into().ok()?,
    ))
}

fn read_u64(bytes: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_be_bytes(
        bytes.get(at..at.checked_add(8)?)?.try_into().ok()?,
    ))
}

#[cfg(test)]
#[allow(clippy::arithmetic_side_effects, clippy::cast_possible_truncation)] // test inputs
mod tests {
    use super::*;

    #[test]
    fn avcc_samples_become_annexb() {
        let sample = [0, 0, 0, 2, 0x65, 0xAA, 0, 0, 0, 1, 0x41];
        let mut out = Vec::new();
        avcc_to_annexb(&sample, &mut out).unwrap();
        assert_eq!(out, [0, 0, 0, 1, 0x65, 0xAA, 0, 0, 0, 1, 0x41]);
        assert!(avcc_to_annexb(&[0, 0, 0, 9, 1], &mut out).is_err());
    }

    #[test]
    fn trun_with_sizes_and_data_offset() {
        // moof { mfhd, traf { tfhd(default-base-is-moof, default duration 3000), trun } }
        let mut tfhd = vec![0, 0x02, 0, 0x08, 0, 0, 0, 1];
        tfhd.extend_from_slice(&3000u32.to_be_bytes());
        let mut trun = vec![0, 0, 0x02, 0x01, 0, 0, 0, 2];
        trun.extend_from_slice(&100u32.to_be_bytes()); // data offset
        trun.extend_from_slice(&10u32.to_be_bytes());
        trun.extend_from_slice(&20u32.to_be_bytes());
        let boxed = |kind: &[u8; 4], body: &[u8]| {
            let mut b = ((body.len() + 8) as u32).to_be_bytes().to_vec();
            b.extend_from_slice(kind);
            b.extend_from_slice(body);
            b
        };
        let traf = boxed(
            b"traf",
            &[boxed(b"tfhd", &tfhd), boxed(b"trun", &trun)].concat(),
        );
        let moof = boxed(b"moof", &[boxed(b"mfhd", &[0; 8]), traf.clone()].concat());
        let samples = parse_moof(&moof, 1000, (1, 500)).unwrap();
        let sample = |offset, size, time| Sample {
            offset,
            size,
            duration: 3000,
            time,
        };
        // Without tfdt the fragment starts where the clock says.
        assert_eq!(samples, vec![sample(1100, 10, 500), sample(1110, 20, 3500)]);
        assert!(parse_moof(&moof[..moof.len() - 4], 0, (1, 0)).is_err());

        // With tfdt (version 1) it starts at the fragment's own decode time.
        let mut tfdt = vec![1, 0, 0, 0];
        tfdt.extend_from_slice(&90_000u64.to_be_bytes());
        let traf = boxed(
            b"traf",
            &[
                boxed(b"tfhd", &tfhd),
                boxed(b"tfdt", &tfdt),
                boxed(b"trun", &trun),
            ]
            .concat(),
        );
        let moof = boxed(b"moof", &[boxed(b"mfhd", &[0; 8]), traf].concat());
        let samples = parse_moof(&moof, 1000, (1, 500)).unwrap();
        assert_eq!(samples[0].time, 90_000);
        assert_eq!(samples[1].time, 93_000);

        // A hostile sample count is refused before anything is allocated.
        let mut huge = trun.clone();
        huge[4..8].copy_from_slice(&u32::MAX.to_be_bytes());
        let traf = boxed(
            b"traf",
            &[boxed(b"tfhd", &tfhd), boxed(b"trun", &huge)].concat(),
        );
        let moof = boxed(b"moof", &[boxed(b"mfhd", &[0; 8]), traf].concat());
        let error = parse_moof(&moof, 0, (1, 0)).unwrap_err();
        assert!(error.contains("samples"), "{error}");
    }
}
