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

/// Numbers swapped into text formats (JSON, the cascade's XML): zero and one, the integer
/// type edges (u32::MAX, u64::MAX, i64::MIN and their neighbours), NaN, both infinities,
/// 1e300, negative zero, fractions where whole numbers belong.
const EXTREME_NUMBERS: [&str; 24] = [
    "0",
    "1",
    "-1",
    "1e308",
    "-1e308",
    "1e300",
    "1e-300",
    "4294967295",
    "4294967296",
    "4000000000",
    "18446744073709551615",
    "18446744073709551616",
    "-9223372036854775808",
    "9223372036854775807",
    "1.0000001",
    "NaN",
    "nan",
    "inf",
    "-inf",
    "Infinity",
    "0.5",
    "99999999999",
    "-0",
    "-0.0",
];

/// The cascade XML's numeric elements a structured edit aims at (`rects` is the feature's
/// rectangle list: every x, y, width, height and weight in it).
const XML_FIELDS: [&str; 9] = [
    "width",
    "height",
    "stageThreshold",
    "internalNodes",
    "leafValues",
    "rects",
    "stageNum",
    "maxWeakCount",
    "maxCatCount",
];

/// The MP4 boxes whose fields a structured edit aims at: sample tables (`trun`: counts,
/// offsets, every sample's duration, size, flags), fragment defaults, decode times, the
/// track's timescale and defaults, the sample description, and box sizes themselves.
const MP4_BOXES: [&[u8; 4]; 12] = [
    b"trun", b"tfhd", b"tfdt", b"mdhd", b"trex", b"mvhd", b"tkhd", b"avcC", b"stsd", b"moof",
    b"mdat", b"traf",
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
    /// Structured, in the cascade's XML: the `token`-th number inside the `occurrence`-th
    /// element named `XML_FIELDS[field]` replaced by an extreme one.
    XmlField {
        field: u8,
        occurrence: u16,
        token: u8,
        which: u8,
    },
    /// Structured, in an MP4: the `word`-th 4-byte field (or 8 bytes, `wide`) of the
    /// `occurrence`-th box of kind `MP4_BOXES[kind]`, counted from its header, set to a
    /// boundary integer — so every sample's duration, size and offset can be reached.
    Mp4Field {
        kind: u8,
        occurrence: u8,
        word: u16,
        wide: bool,
        which: u8,
    },
    /// Structured, in JSON: the value of the `key`-th `"name":` (a number, string, boolean
    /// or null; objects and arrays are left alone) replaced by an extreme number.
    JsonValue {
        key: u16,
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

/// Small indices most of the time (the first stages, fragments and keys are what every run
/// reaches), any index sometimes.
fn mostly_small() -> impl Strategy<Value = u16> {
    prop_oneof![3 => 0u16..16, 1 => any::<u16>()]
}

/// Structured edits for the cascade's XML: extreme values in its numeric elements, with
/// a few unstructured ones.
pub fn cascade_edits() -> impl Strategy<Value = Vec<Edit>> {
    let edit = prop_oneof![
        6 => (0..XML_FIELDS.len() as u8, mostly_small(), 0u8..16, any::<u8>()).prop_map(
            |(field, occurrence, token, which)| Edit::XmlField { field, occurrence, token, which }
        ),
        1 => (any::<u16>(), any::<u8>()).prop_map(|(index, which)| Edit::Number { index, which }),
    ];
    proptest::collection::vec(edit, 1..4)
}

/// Structured edits for MP4s: boundary integers in the fields of the boxes that matter,
/// with a few unstructured ones.
pub fn mp4_field_edits() -> impl Strategy<Value = Vec<Edit>> {
    let field = (
        0..MP4_BOXES.len() as u8,
        prop_oneof![3 => 0u8..4, 1 => any::<u8>()],
        prop_oneof![3 => 0u16..64, 1 => any::<u16>()],
        any::<bool>(),
        any::<u8>(),
    )
        .prop_map(|(kind, occurrence, word, wide, which)| Edit::Mp4Field {
            kind,
            occurrence,
            word,
            wide,
            which,
        });
    let edit = prop_oneof![
        6 => field,
        1 => (any::<u16>(), 0u8..24, any::<u8>())
            .prop_map(|(box_index, field, which)| Edit::BoxField { box_index, field, which }),
    ];
    proptest::collection::vec(edit, 1..4)
}

/// Structured edits for JSON (the config, `clip.json`): extreme values for its keys.
pub fn json_edits() -> impl Strategy<Value = Vec<Edit>> {
    let edit = prop_oneof![
        4 => (mostly_small(), any::<u8>()).prop_map(|(key, which)| Edit::JsonValue { key, which }),
        1 => (any::<u16>(), any::<u8>()).prop_map(|(index, which)| Edit::Number { index, which }),
    ];
    proptest::collection::vec(edit, 1..4)
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
        Edit::XmlField {
            field,
            occurrence,
            token,
            which,
        } => replace_xml_number(bytes, field, occurrence, token, which),
        Edit::Mp4Field {
            kind,
            occurrence,
            word,
            wide,
            which,
        } => {
            let kind = MP4_BOXES[usize::from(kind) % MP4_BOXES.len()];
            let starts: Vec<usize> = box_starts(bytes)
                .into_iter()
                .filter(|&at| &bytes[at + 4..at + 8] == kind)
                .collect();
            if let Some(&start) = starts.get(usize::from(occurrence) % starts.len().max(1)) {
                let size = u32::from_be_bytes(bytes[start..start + 4].try_into().unwrap());
                let words = (size as usize / 4).max(1);
                let at = start + (usize::from(word) % words) * 4;
                write_boundary(bytes, at, if wide { 8 } else { 4 }, which);
            }
        }
        Edit::JsonValue { key, which } => replace_json_value(bytes, key, which),
    }
}

fn extreme(which: u8) -> &'static str {
    EXTREME_NUMBERS[usize::from(which) % EXTREME_NUMBERS.len()]
}

/// Replaces the `token`-th number inside the `occurrence`-th `<name>…</name>` element.
fn replace_xml_number(bytes: &mut Vec<u8>, field: u8, occurrence: u16, token: u8, which: u8) {
    let name = XML_FIELDS[usize::from(field) % XML_FIELDS.len()];
    let (open, close) = (format!("<{name}>"), format!("</{name}>"));
    let elements: Vec<(usize, usize)> = find_all(bytes, open.as_bytes())
        .into_iter()
        .filter_map(|start| {
            let body = start + open.len();
            let end = find_all(&bytes[body..], close.as_bytes())
                .first()
                .map(|e| body + e)?;
            Some((body, end))
        })
        .collect();
    let Some(&(body, end)) = elements.get(usize::from(occurrence) % elements.len().max(1)) else {
        return;
    };
    let numbers = number_spans(&bytes[body..end]);
    if let Some(&(start, stop)) = numbers.get(usize::from(token) % numbers.len().max(1)) {
        bytes.splice(body + start..body + stop, extreme(which).bytes());
    }
}

/// Replaces the value after the `key`-th `"…":` of a JSON text, when it is a scalar.
fn replace_json_value(bytes: &mut Vec<u8>, key: u16, which: u8) {
    let colons: Vec<usize> = (0..bytes.len())
        .filter(|&i| {
            bytes[i] == b':'
                && i > 0
                && bytes[..i].iter().rev().find(|b| !b.is_ascii_whitespace()) == Some(&b'"')
        })
        .collect();
    let Some(&colon) = colons.get(usize::from(key) % colons.len().max(1)) else {
        return;
    };
    let mut start = colon + 1;
    while start < bytes.len() && bytes[start].is_ascii_whitespace() {
        start += 1;
    }
    if start >= bytes.len() || matches!(bytes[start], b'{' | b'[') {
        return;
    }
    let end = if bytes[start] == b'"' {
        match bytes[start + 1..].iter().position(|&b| b == b'"') {
            Some(p) => start + 1 + p + 1,
            None => return,
        }
    } else {
        start
            + bytes[start..]
                .iter()
                .position(|&b| matches!(b, b',' | b'}' | b']') || b.is_ascii_whitespace())
                .unwrap_or(bytes.len() - start)
    };
    bytes.splice(start..end, extreme(which).bytes());
}

fn find_all(haystack: &[u8], needle: &[u8]) -> Vec<usize> {
    if needle.is_empty() || haystack.len() < needle.len() {
        return Vec::new();
    }
    (0..=haystack.len() - needle.len())
        .filter(|&i| &haystack[i..i + needle.len()] == needle)
        .collect()
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
    bytes.splice(start..end, extreme(which).bytes());
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
        let edited = apply(text, &[Edit::Number { index: 1, which: 3 }]);
        assert_eq!(
            String::from_utf8(edited).unwrap(),
            r#"{"fps": 6, "scale": 1e308, "name": "desk_7"}"#
        );
    }

    #[test]
    fn structured_edits_hit_their_fields() {
        let xml = b"<cascade><width>24</width><rects><_>6 4 12 9 -1.</_></rects></cascade>";
        let rect_x = Edit::XmlField {
            field: 5,
            occurrence: 0,
            token: 0,
            which: 7,
        };
        assert_eq!(
            String::from_utf8(apply(xml, &[rect_x])).unwrap(),
            "<cascade><width>24</width><rects><_>4294967295 4 12 9 -1.</_></rects></cascade>"
        );
        let width = Edit::XmlField {
            field: 0,
            occurrence: 0,
            token: 0,
            which: 9,
        };
        assert!(String::from_utf8(apply(xml, &[width]))
            .unwrap()
            .contains("<width>4000000000</width>"));
        let json = br#"{"fps": 6, "name": "desk", "on": true, "nested": {"a": 1}}"#;
        let edited =
            |key, which| String::from_utf8(apply(json, &[Edit::JsonValue { key, which }])).unwrap();
        assert_eq!(
            edited(0, 15),
            r#"{"fps": NaN, "name": "desk", "on": true, "nested": {"a": 1}}"#
        );
        assert_eq!(
            edited(1, 12),
            r#"{"fps": 6, "name": -9223372036854775808, "on": true, "nested": {"a": 1}}"#
        );
        assert_eq!(
            edited(2, 0),
            r#"{"fps": 6, "name": "desk", "on": 0, "nested": {"a": 1}}"#
        );
        assert_eq!(
            edited(3, 0),
            std::str::from_utf8(json).unwrap(),
            "objects are left alone"
        );
        // trun: size, type, version/flags, sample count, then the samples' fields.
        let mut mp4 = vec![0, 0, 0, 24];
        mp4.extend_from_slice(b"trun");
        mp4.extend_from_slice(&[0, 0, 1, 0, 0, 0, 0, 2, 0, 0, 0, 7, 0, 0, 0, 7]);
        let duration = Edit::Mp4Field {
            kind: 0,
            occurrence: 0,
            word: 5,
            wide: false,
            which: 9,
        };
        assert_eq!(&apply(&mp4, &[duration])[20..24], &[0xff; 4]);
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
