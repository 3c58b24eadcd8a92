//! Start-up repair of an interrupted recording: a fragmented MP4 is cut back to its last
//! whole fragment (a `moof` followed by a complete `mdat`), after which any player reads it.
//! Whatever follows — a box cut short, a size that overflows or runs past the file, a
//! zero-filled or garbage tail from unwritten blocks — is where the cut goes.

use std::fs::File;
use std::path::Path;

use super::boxes::box_at;
use super::write::VideoError;

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
    let (kept_len, fragments) = last_whole_fragment(&mut file, original_len).map_err(io)?;
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

fn last_whole_fragment(file: &mut File, len: u64) -> std::io::Result<(u64, usize)> {
    let mut offset = 0u64;
    let mut good_end = 0u64;
    let mut has_header = false;
    let mut pending_moof = false;
    let mut fragments = 0;
    // Any box that does not read as whole ends the walk: the cut goes before it.
    while let Ok(Some(top)) = box_at(file, offset, len) {
        offset = top.start + top.len;
        let kind = top.kind;
        match &kind {
            b"moov" => {
                has_header = true;
                good_end = offset;
            }
            b"moof" => pending_moof = true,
            b"mdat" if pending_moof && has_header => {
                pending_moof = false;
                fragments += 1;
                good_end = offset;
            }
            _ => {}
        }
    }
    // A header without a single whole fragment holds no picture: players reject it, so the
    // file is cut to nothing rather than left as an unreadable stub.
    Ok((
        if has_header && fragments > 0 {
            good_end
        } else {
            0
        },
        fragments,
    ))
}
