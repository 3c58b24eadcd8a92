//! Start-up repair of an interrupted recording: a fragmented MP4 is cut back to its last
//! whole fragment (a `moof` followed by a complete `mdat`), after which any player reads it.
//! Whatever follows — a box cut short, a size that overflows or runs past the file, a
//! zero-filled or garbage tail from unwritten blocks — is where the cut goes.
//!
//! A power cut can also leave a fragment whole in size but not in content: the file's length
//! was updated before all its blocks were (zeros), or stale blocks came back (garbage). So the
//! last fragments are checked as H.264 too, newest first, and dropped until one holds: their
//! `mdat` must tile exactly into length-prefixed NAL units, each with a valid header, no
//! zero last byte and no `00 00 00`/`01`/`02` inside (H.264's emulation prevention forbids
//! those in a NAL unit, and a run of unwritten zeros is exactly that). The check streams
//! through the `mdat` in small reads, so memory stays constant for any fragment size.
//! Garbage can still land inside a NAL unit's payload and pass that check, so the last
//! fragment that holds is finally decoded ([`Mp4Source::fragment_decodes`]; each fragment
//! starts with a keyframe and decodes alone) and dropped too if the decoder reports an error.

#![deny(clippy::arithmetic_side_effects, clippy::cast_possible_truncation)]

use std::fs::File;
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom};
use std::path::Path;

use super::boxes::{box_at, TopBox};
use super::write::VideoError;
use super::Mp4Source;

/// What [`repair`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Repair {
    pub original_len: u64,
    pub kept_len: u64,
    pub fragments: usize,
}

/// Cuts a fragmented MP4 back to its last whole fragment (a `moof` followed by a complete
/// `mdat`). A file without a complete header (`ftyp` + `moov`) or without any whole
/// fragment is cut to nothing.
pub fn repair(path: &Path) -> Result<Repair, VideoError> {
    let io = |source| VideoError::Io {
        path: path.to_owned(),
        source,
    };
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .map_err(io)?;
    let original_len = file.metadata().map_err(io)?.len();
    let decodes = |moof_start| Mp4Source::fragment_decodes(path, moof_start);
    let (kept_len, fragments) =
        last_whole_fragment(&mut file, original_len, decodes).map_err(io)?;
    if kept_len != original_len {
        file.set_len(kept_len).map_err(io)?;
        file.sync_all().map_err(io)?;
    }
    Ok(Repair {
        original_len,
        kept_len,
        fragments,
    })
}

/// The length to keep and the number of whole fragments; `decodes(moof_start)` is the last
/// check of the newest fragment that holds structurally.
fn last_whole_fragment(
    file: &mut File,
    len: u64,
    decodes: impl Fn(u64) -> bool,
) -> std::io::Result<(u64, usize)> {
    let mut offset = 0u64;
    let mut has_header = false;
    let mut pending_moof = None;
    // Each whole fragment's moof start and mdat, in file order.
    let mut mdats: Vec<(u64, TopBox)> = Vec::new();
    // Any box that does not read as whole ends the walk: the cut goes before it.
    while let Ok(Some(top)) = box_at(file, offset, len) {
        offset = top.end();
        match &top.kind {
            b"moov" => has_header = true,
            b"moof" => pending_moof = Some(top.start),
            b"mdat" if pending_moof.is_some() && has_header => {
                if let Some(moof_start) = pending_moof.take() {
                    mdats.push((moof_start, top));
                }
            }
            _ => {}
        }
    }
    // Newest first, drop fragments whose H.264 does not hold or decode (see the module doc).
    while let Some((moof_start, mdat)) = mdats.last() {
        if holds_h264(file, mdat)? && decodes(*moof_start) {
            break;
        }
        mdats.pop();
    }
    // A header without a single whole fragment holds no picture: players reject it, so the
    // file is cut to nothing rather than left as an unreadable stub.
    Ok(match mdats.last() {
        Some((_, last)) if has_header => (last.end(), mdats.len()),
        _ => (0, 0),
    })
}

/// True when `mdat`'s payload tiles exactly into valid length-prefixed H.264 NAL units.
fn holds_h264(file: &mut File, mdat: &TopBox) -> std::io::Result<bool> {
    file.seek(SeekFrom::Start(mdat.start.saturating_add(mdat.header_len)))?;
    let payload = mdat.len.saturating_sub(mdat.header_len);
    let mut reader = BufReader::with_capacity(64 * 1024, file.take(payload));
    let mut left = payload;
    while left > 0 {
        let mut length = [0u8; 4];
        if left < 5 || reader.read_exact(&mut length).is_err() {
            return Ok(false);
        }
        let nal_len = u64::from(u32::from_be_bytes(length));
        left = left.saturating_sub(4); // left >= 5 (checked above)
        if nal_len == 0 || nal_len > left || !nal_unit_holds(&mut reader, nal_len)? {
            return Ok(false);
        }
        left = left.saturating_sub(nal_len); // nal_len <= left (checked above)
    }
    Ok(true)
}

/// Reads one NAL unit of `len` bytes: a header with the forbidden bit clear and a type of
/// 1..=23, no emulation-prevented sequence inside, a last byte that is not zero.
fn nal_unit_holds(reader: &mut impl BufRead, len: u64) -> std::io::Result<bool> {
    let mut zeros = 0u32;
    let mut last = 0u8;
    let mut seen = 0u64;
    while seen < len {
        let chunk = reader.fill_buf()?;
        if chunk.is_empty() {
            return Ok(false);
        }
        let take = chunk
            .len()
            .min(usize::try_from(len.saturating_sub(seen)).unwrap_or(usize::MAX));
        for (i, &byte) in chunk[..take].iter().enumerate() {
            if seen == 0 && i == 0 {
                let nal_type = byte & 0x1f;
                if byte & 0x80 != 0 || !(1..=23).contains(&nal_type) {
                    return Ok(false);
                }
            } else if zeros >= 2 && byte <= 2 {
                return Ok(false);
            }
            zeros = if byte == 0 {
                zeros.saturating_add(1)
            } else {
                0
            };
            last = byte;
        }
        reader.consume(take);
        seen = seen.saturating_add(u64::try_from(take).unwrap_or(u64::MAX));
    }
    Ok(last != 0)
}

#[cfg(test)]
#[allow(clippy::arithmetic_side_effects, clippy::cast_possible_truncation)] // test inputs
mod tests {
    use super::*;

    /// A recording the kiosk made (8 frames, two fragments: the fuzz corpus's).
    fn recording() -> Vec<u8> {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../tests/data/fuzz/corpus/kiosk-8-frames.mp4");
        std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    }

    /// What a power cut leaves after the last whole fragment — blocks never written (zeros),
    /// stale data (garbage), half a fragment — is cut off; the whole fragments stay.
    #[test]
    fn zero_filled_garbage_and_torn_tails_are_cut_back_to_the_last_whole_fragment() {
        let whole = recording();
        let dir = std::env::temp_dir().join(format!("ekspresi-repair-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let mut garbage = Vec::with_capacity(70_000);
        let mut state = 0x1234_5678u32;
        for _ in 0..70_000 {
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            garbage.push((state >> 24) as u8);
        }
        // The second fragment's moof starts after ftyp + moov + the first fragment.
        let first_fragment_end = 28 + 620 + 184 + 52_160;
        let tails: [(&str, Vec<u8>, usize); 4] = [
            (
                "zeros",
                [whole.clone(), vec![0; 65_536]].concat(),
                whole.len(),
            ),
            (
                "garbage",
                [whole.clone(), garbage.clone()].concat(),
                whole.len(),
            ),
            (
                "torn",
                whole[..whole.len() - 5_000].to_vec(),
                first_fragment_end,
            ),
            (
                "torn then zeros",
                [whole[..whole.len() - 5_000].to_vec(), vec![0; 8_192]].concat(),
                first_fragment_end,
            ),
        ];
        for (name, bytes, expected) in tails {
            let path = dir.join(format!("{name}.mp4"));
            std::fs::write(&path, &bytes).unwrap();
            let repair = repair(&path).unwrap();
            assert_eq!(repair.kept_len, expected as u64, "{name}");
            assert_eq!(
                std::fs::metadata(&path).unwrap().len(),
                expected as u64,
                "{name}"
            );
            assert_eq!(std::fs::read(&path).unwrap(), whole[..expected], "{name}");
        }
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// The soak's failure (issue 15, power loss 19): stale blocks landing inside the last
    /// fragment's slice data, with no zero byte, pass the structural check; the decoder
    /// rejects them, so that fragment goes too and the file decodes cleanly.
    #[test]
    fn garbage_inside_the_last_slice_is_caught_by_decoding_it() {
        let whole = recording();
        let first_fragment_end = 28 + 620 + 184 + 52_160;
        let mdat = first_fragment_end
            + whole[first_fragment_end..]
                .windows(4)
                .position(|w| w == b"mdat")
                .expect("the second fragment's mdat")
            - 4;
        // Inside the first NAL unit (after the mdat header, its length and its header).
        let slice_data = mdat + 8 + 4 + 1 + 40;
        let mut damaged = whole.clone();
        let mut state = 0x9E37_79B9u32;
        for byte in &mut damaged[slice_data..slice_data + 400] {
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            *byte = ((state >> 24) as u8).max(1);
        }
        let dir = std::env::temp_dir().join(format!("ekspresi-repair-nal-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("garbled.mp4");
        std::fs::write(&path, &damaged).unwrap();
        // Structurally the damaged fragment still holds: only decoding can tell.
        let mut file = File::open(&path).unwrap();
        let len = damaged.len() as u64;
        assert_eq!(
            last_whole_fragment(&mut file, len, |_| true).unwrap(),
            (len, 2)
        );
        let repair = repair(&path).unwrap();
        assert_eq!(repair.kept_len, first_fragment_end as u64);
        assert_eq!(repair.fragments, 1);
        assert!(Mp4Source::fragment_decodes(&path, 28 + 620));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
