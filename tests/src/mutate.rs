//! Input mutation for the fuzz tests (`tests/tests/fuzz.rs`): edits applied to a real file —
//! bit flips, random bytes, boundary integers written over 1–8 bytes (anywhere, or at a field
//! of an MP4 box header, where sizes, counts and durations live), cuts, repeats and deletions,
//! and for text formats a number swapped for an extreme one. The edits are plain values that
//! proptest generates and shrinks, so a crash shrinks to the few edits that cause it and is
//! replayed from `proptest-regressions/` on every later run.

use proptest::prelude::*;

/// Integers that sit on the edges parsers get wrong.
const BOUNDARY: [u64; 14] = [
    0,
    1,
    0x7f,
    0x80,
    0xff,
    0x7fff,
    0xffff,
    0x7fff_ffff,
    0x8000_0000,
    0xffff_ffff,
    0x1_0000_0000,
    0x7fff_ffff_ffff_ffff,
    0x8000_0000_0000_0000,
    u64::MAX,
];

/// Numbers swapped into text formats (JSON, the cascade's XML).
const EXTREME_NUMBERS: [&str; 14] = [
    "0",
    "-1",
    "1e308",
    "-1e308",
    "1e-300",
    "4294967295",
    "4294967296",
    "18446744073709551615",
    "1.0000001",
    "NaN",
    "inf",
    "0.5",
    "99999999999",
    "-0",
];

/// One edit. Positions are taken modulo the input's length when applied, so any edit
/// applies to any input.
#[derive(Debug, Clone)]
pub enum Edit {
    FlipBit {
        at: u32,
        bit: u8,
    },
    SetByte {
        at: u32,
        value: u8,
    },
    /// A boundary integer, big-endian over `width` bytes (MP4 is big-endian).
    Boundary {
        at: u32,
        width: u8,
        which: u8,
    },
    /// A boundary integer over one of the first 24 bytes of the `box_index`-th MP4 box
    /// (size, type, version/flags, then the first counts or durations).
    BoxField {
        box_index: u16,
        field: u8,
        which: u8,
    },
    Truncate {
        at: u32,
    },
    Repeat {
        at: u32,
        len: u16,
    },
    Delete {
        at: u32,
        len: u16,
    },
    /// The `index`-th number in a text input replaced by an extreme one.
    Number {
        index: u16,
        which: u8,
    },
}

/// Edits for binary inputs.
pub fn binary_edits() -> impl Strategy<Value = Vec<Edit>> {
    let edit = prop_oneof![
        1 => (any::<u32>(), 0u8..8).prop_map(|(at, bit)| Edit::FlipBit { at, bit }),
        1 => (any::<u32>(), any::<u8>()).prop_map(|(at, value)| Edit::SetByte { at, value }),
        1 => (any::<u32>(), prop_oneof![Just(1u8), Just(2), Just(4), Just(8)], any::<u8>())
            .prop_map(|(at, width, which)| Edit::Boundary { at, width, which }),
        3 => (any::<u16>(), 0u8..24, any::<u8>())
            .prop_map(|(box_index, field, which)| Edit::BoxField { box_index, field, which }),
        1 => any::<u32>().prop_map(|at| Edit::Truncate { at }),
        1 => (any::<u32>(), 1u16..4096).prop_map(|(at, len)| Edit::Repeat { at, len }),
        1 => (any::<u32>(), 1u16..4096).prop_map(|(at, len)| Edit::Delete { at, len }),
    ];
    proptest::collection::vec(edit, 1..6)
}

/// Edits for text inputs: mostly numbers, some raw byte edits.
pub fn text_edits() -> impl Strategy<Value = Vec<Edit>> {
    let edit = prop_oneof![
        4 => (any::<u16>(), any::<u8>()).prop_map(|(index, which)| Edit::Number { index, which }),
        1 => (any::<u32>(), any::<u8>()).prop_map(|(at, value)| Edit::SetByte { at, value }),
        1 => any::<u32>().prop_map(|at| Edit::Truncate { at }),
        1 => (any::<u32>(), 1u16..64).prop_map(|(at, len)| Edit::Delete { at, len }),
    ];
    proptest::collection::vec(edit, 1..4)
}

/// `input` with `edits` applied in order.
pub fn apply(input: &[u8], edits: &[Edit]) -> Vec<u8> {
    let mut bytes = input.to_vec();
    for edit in edits {
        apply_one(&mut bytes, edit);
    }
    bytes
}

fn apply_one(bytes: &mut Vec<u8>, edit: &Edit) {
    if bytes.is_empty() {
        return;
    }
    let pick = |at: u32, len: usize| at as usize % len;
    match *edit {
        Edit::FlipBit { at, bit } => {
            let i = pick(at, bytes.len());
            bytes[i] ^= 1 << (bit % 8);
        }
        Edit::SetByte { at, value } => {
            let i = pick(at, bytes.len());
            bytes[i] = value;
        }
        Edit::Boundary { at, width, which } => {
            let i = pick(at, bytes.len());
            write_boundary(bytes, i, width, which);
        }
        Edit::BoxField {
            box_index,
            field,
            which,
        } => {
            let boxes = box_starts(bytes);
            if let Some(&start) = boxes.get(usize::from(box_index) % boxes.len().max(1)) {
                // Fields are 4-byte aligned after the 8-byte header; 8 bytes at a 64-bit size.
                let offset = usize::from(field / 4) * 4;
                let width = if offset == 8 { 8 } else { 4 };
                write_boundary(bytes, start + offset, width, which);
            }
        }
        Edit::Truncate { at } => {
            let i = pick(at, bytes.len());
            bytes.truncate(i);
        }
        Edit::Repeat { at, len } => {
            let i = pick(at, bytes.len());
            let end = (i + usize::from(len)).min(bytes.len());
            let copy = bytes[i..end].to_vec();
            bytes.splice(end..end, copy);
        }
        Edit::Delete { at, len } => {
            let i = pick(at, bytes.len());
            let end = (i + usize::from(len)).min(bytes.len());
            bytes.drain(i..end);
        }
        Edit::Number { index, which } => replace_number(bytes, index, which),
    }
}

fn write_boundary(bytes: &mut [u8], at: usize, width: u8, which: u8) {
    let value = BOUNDARY[usize::from(which) % BOUNDARY.len()];
    let width = usize::from(width.clamp(1, 8));
    let be = value.to_be_bytes();
    for (k, byte) in be[8 - width..].iter().enumerate() {
        if let Some(slot) = bytes.get_mut(at + k) {
            *slot = *byte;
        }
    }
}

/// Containers whose children are boxes too (the ones the kiosk's MP4s use).
const CONTAINERS: [&[u8; 4]; 10] = [
    b"moov", b"trak", b"mdia", b"minf", b"stbl", b"mvex", b"moof", b"traf", b"dinf", b"edts",
];

/// Where every box of an MP4 starts, containers' children included, as far as the sizes
/// make sense.
pub fn box_starts(bytes: &[u8]) -> Vec<usize> {
    let mut starts = Vec::new();
    walk_boxes(bytes, 0, bytes.len(), 0, &mut starts);
    starts
}

fn walk_boxes(bytes: &[u8], mut at: usize, end: usize, depth: u8, starts: &mut Vec<usize>) {
    while at + 8 <= end && depth < 8 {
        let size = u32::from_be_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]]);
        let size = size as usize;
        if size < 8 || at + size > end {
            return;
        }
        starts.push(at);
        let kind = &bytes[at + 4..at + 8];
        if CONTAINERS.iter().any(|c| c.as_slice() == kind) {
            walk_boxes(bytes, at + 8, at + size, depth + 1, starts);
        }
        at += size;
    }
}

/// Replaces the `index`-th number (modulo how many there are) of a text input.
fn replace_number(bytes: &mut Vec<u8>, index: u16, which: u8) {
    let numbers = number_spans(bytes);
    if numbers.is_empty() {
        return;
    }
    let (start, end) = numbers[usize::from(index) % numbers.len()];
    let replacement = EXTREME_NUMBERS[usize::from(which) % EXTREME_NUMBERS.len()];
    bytes.splice(start..end, replacement.bytes());
}

/// Byte ranges of the numbers in a text: a digit run with an optional sign, point and
/// exponent.
fn number_spans(bytes: &[u8]) -> Vec<(usize, usize)> {
    let mut spans = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        let starts_number = bytes[i].is_ascii_digit()
            && (i == 0 || !(bytes[i - 1].is_ascii_alphanumeric() || bytes[i - 1] == b'_'));
        if !starts_number {
            i += 1;
            continue;
        }
        let start = if i > 0 && bytes[i - 1] == b'-' {
            i - 1
        } else {
            i
        };
        let mut end = i;
        while end < bytes.len()
            && (bytes[end].is_ascii_digit()
                || matches!(bytes[end], b'.' | b'e' | b'E' | b'+' | b'-'))
        {
            end += 1;
        }
        spans.push((start, end));
        i = end;
    }
    spans
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_found_and_replaced() {
        let text = br#"{"fps": 6, "scale": -1.25e3, "name": "desk_7"}"#;
        assert_eq!(number_spans(text).len(), 2);
        let edited = apply(text, &[Edit::Number { index: 1, which: 2 }]);
        assert_eq!(
            String::from_utf8(edited).unwrap(),
            r#"{"fps": 6, "scale": 1e308, "name": "desk_7"}"#
        );
    }

    #[test]
    fn box_fields_land_on_box_headers() {
        // ftyp (16 bytes) then moov containing one 8-byte free box.
        let mut mp4 = Vec::new();
        mp4.extend_from_slice(&[0, 0, 0, 16]);
        mp4.extend_from_slice(b"ftypisom\0\0\0\0");
        mp4.extend_from_slice(&[0, 0, 0, 16]);
        mp4.extend_from_slice(b"moov");
        mp4.extend_from_slice(&[0, 0, 0, 8]);
        mp4.extend_from_slice(b"free");
        assert_eq!(box_starts(&mp4), vec![0, 16, 24]);
        let edited = apply(
            &mp4,
            &[Edit::BoxField {
                box_index: 2,
                field: 0,
                which: 9,
            }],
        );
        assert_eq!(&edited[24..28], &[0xff, 0xff, 0xff, 0xff]);
    }
}
