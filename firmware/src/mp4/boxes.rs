//! Reading the top-level boxes of an MP4 file, one header at a time: shared by the writer's
//! start-up [`super::repair`] and by replay ([`super::read`]), so both agree on what counts
//! as a whole box. Every size read from the file is checked before use: a size that
//! overflows, is smaller than its header or runs past the end of the file is an error.

#![deny(clippy::arithmetic_side_effects, clippy::cast_possible_truncation)]

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};

/// A complete top-level box: its four-character kind, file offset and total length
/// (`start + len` never passes the end of the file).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TopBox {
    pub kind: [u8; 4],
    pub start: u64,
    pub len: u64,
    /// 8, or 16 with a 64-bit size: the payload starts at `start + header_len`.
    pub header_len: u64,
}

impl TopBox {
    /// Where the next box starts.
    pub fn end(&self) -> u64 {
        // box_at only returns boxes that end inside the file, so this cannot overflow.
        self.start.saturating_add(self.len)
    }
}

/// A box header that cannot be a whole box of this file.
#[derive(Debug, thiserror::Error)]
pub enum BoxError {
    #[error("reading the box at byte {offset}: {source}")]
    Io { offset: u64, source: std::io::Error },
    #[error("the box at byte {offset} is cut short: {needed} bytes needed, {available} left")]
    PastEnd {
        offset: u64,
        needed: u64,
        available: u64,
    },
    #[error("the box at byte {offset} has an impossible size {size}")]
    BadSize { offset: u64, size: u64 },
}

/// The box starting at `offset` of a file `file_len` bytes long; `Ok(None)` exactly at the
/// end of the file. The "to end of file" size 0, which our writer never produces and which
/// cannot be checked for completeness, is refused like any size under 8.
pub fn box_at(file: &mut File, offset: u64, file_len: u64) -> Result<Option<TopBox>, BoxError> {
    let available = file_len.saturating_sub(offset);
    if available == 0 {
        return Ok(None);
    }
    let past_end = |needed| BoxError::PastEnd {
        offset,
        needed,
        available,
    };
    if available < 8 {
        return Err(past_end(8));
    }
    let mut header = [0u8; 16];
    let header_len = available.min(16) as usize;
    file.seek(SeekFrom::Start(offset))
        .and_then(|_| file.read_exact(&mut header[..header_len]))
        .map_err(|source| BoxError::Io { offset, source })?;
    let mut len = u64::from(u32::from_be_bytes([
        header[0], header[1], header[2], header[3],
    ]));
    let mut header_size = 8;
    if len == 1 {
        if header_len < 16 {
            return Err(past_end(16));
        }
        let mut large = [0u8; 8];
        large.copy_from_slice(&header[8..16]);
        len = u64::from_be_bytes(large);
        header_size = 16;
    }
    if len < header_size {
        return Err(BoxError::BadSize { offset, size: len });
    }
    if len > available {
        return Err(past_end(len));
    }
    Ok(Some(TopBox {
        kind: [header[4], header[5], header[6], header[7]],
        start: offset,
        len,
        header_len: header_size,
    }))
}

#[cfg(test)]
#[allow(clippy::arithmetic_side_effects, clippy::cast_possible_truncation)] // test inputs
mod tests {
    use super::*;
    use std::io::Write;

    fn file_with(bytes: &[u8], name: &str) -> (File, u64) {
        let path =
            std::env::temp_dir().join(format!("ekspresi-boxes-{name}-{}", std::process::id()));
        std::fs::File::create(&path)
            .unwrap()
            .write_all(bytes)
            .unwrap();
        let file = File::open(&path).unwrap();
        let _ = std::fs::remove_file(&path);
        (file, bytes.len() as u64)
    }

    fn large_box(kind: &[u8; 4], size: u64, payload: usize) -> Vec<u8> {
        let mut bytes = 1u32.to_be_bytes().to_vec();
        bytes.extend_from_slice(kind);
        bytes.extend_from_slice(&size.to_be_bytes());
        bytes.resize(16 + payload, 0);
        bytes
    }

    #[test]
    fn whole_boxes_are_read_and_the_end_is_none() {
        let mut bytes = 12u32.to_be_bytes().to_vec();
        bytes.extend_from_slice(b"free\0\0\0\0");
        bytes.extend(large_box(b"mdat", 20, 4));
        let (mut file, len) = file_with(&bytes, "whole");
        let first = box_at(&mut file, 0, len).unwrap().unwrap();
        assert_eq!((&first.kind, first.len, first.end()), (b"free", 12, 12));
        let second = box_at(&mut file, first.end(), len).unwrap().unwrap();
        assert_eq!((&second.kind, second.len), (b"mdat", 20));
        assert!(box_at(&mut file, second.end(), len).unwrap().is_none());
    }

    #[test]
    fn sizes_that_overflow_or_run_past_the_file_are_errors() {
        // A 64-bit size near 2^64: `offset + size` would wrap.
        let (mut file, len) = file_with(&large_box(b"mdat", u64::MAX - 3, 8), "huge");
        assert!(matches!(
            box_at(&mut file, 0, len),
            Err(BoxError::PastEnd { .. })
        ));
        // Read at a later offset, the same size must not wrap either.
        let mut bytes = 8u32.to_be_bytes().to_vec();
        bytes.extend_from_slice(b"free");
        bytes.extend(large_box(b"moof", u64::MAX, 0));
        let (mut file, len) = file_with(&bytes, "wrap");
        assert!(box_at(&mut file, 8, len).is_err());
        // Sizes under the header: 0 ("to end of file"), 7, and a large size of 15.
        for (size, name) in [(0u32, "zero"), (7, "seven")] {
            let mut bytes = size.to_be_bytes().to_vec();
            bytes.extend_from_slice(b"moov\0\0\0\0\0\0\0\0");
            let (mut file, len) = file_with(&bytes, name);
            assert!(matches!(
                box_at(&mut file, 0, len),
                Err(BoxError::BadSize { .. })
            ));
        }
        let (mut file, len) = file_with(&large_box(b"mdat", 15, 0), "fifteen");
        assert!(matches!(
            box_at(&mut file, 0, len),
            Err(BoxError::BadSize { .. })
        ));
        // A header cut short, and an offset beyond the file.
        let (mut file, len) = file_with(b"\0\0\0\x10moo", "short");
        assert!(matches!(
            box_at(&mut file, 0, len),
            Err(BoxError::PastEnd { .. })
        ));
        assert!(box_at(&mut file, u64::MAX, len).unwrap().is_none());
    }
}
