//! Reading the top-level boxes of an MP4 file, one header at a time: shared by the
//! start-up repair of interrupted recordings ([`super::video::repair`]) and by replay
//! ([`crate::source::mp4`]), so both agree on what counts as a whole box.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};

/// A complete top-level box: its four-character kind, file offset and total length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TopBox {
    pub kind: [u8; 4],
    pub start: u64,
    pub len: u64,
}

/// The box starting at `offset` of a file `file_len` bytes long; `None` at the end of the
/// file or when the box is cut short or malformed (size < 8, or the "to end of file" size
/// 0, which our writer never produces and which cannot be checked for completeness).
pub fn box_at(file: &mut File, offset: u64, file_len: u64) -> std::io::Result<Option<TopBox>> {
    if offset + 8 > file_len {
        return Ok(None);
    }
    let mut header = [0u8; 16];
    let available = (file_len - offset).min(16) as usize;
    file.seek(SeekFrom::Start(offset))?;
    file.read_exact(&mut header[..available])?;
    let mut len = u64::from(u32::from_be_bytes([
        header[0], header[1], header[2], header[3],
    ]));
    if len == 1 && available == 16 {
        len = u64::from_be_bytes(header[8..16].try_into().unwrap_or([0; 8]));
    }
    if len < 8 || offset + len > file_len {
        return Ok(None);
    }
    Ok(Some(TopBox {
        kind: [header[4], header[5], header[6], header[7]],
        start: offset,
        len,
    }))
}
