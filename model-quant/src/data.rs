//! FER-2013 loading: the Kaggle CSV (plain or gzipped) and the folder-per-class image layout,
//! plus the stratified, seeded validation split carved out of `Training`.
//!
//! Faces are kept as 48×48 grey bytes (2,304 per face) so augmentation works on the same
//! values the CSV holds; [`ekspresi_common::prepare_face`] turns them into model input.

use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

use ekspresi_common::{face_pixels, Expression, GreyBuffer, FACE_SIDE};
use flate2::read::MultiGzDecoder;
use rand::seq::SliceRandom;
use rand::SeedableRng;

/// Grey values in one face.
pub const FACE_LEN: usize = FACE_SIDE * FACE_SIDE;

/// Which part of FER-2013 a face belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum Usage {
    Training,
    PublicTest,
    PrivateTest,
}

impl std::str::FromStr for Usage {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text.trim() {
            "Training" => Ok(Usage::Training),
            "PublicTest" => Ok(Usage::PublicTest),
            "PrivateTest" => Ok(Usage::PrivateTest),
            other => Err(format!(
                "unknown Usage `{other}` (expected Training, PublicTest or PrivateTest)"
            )),
        }
    }
}

/// Why FER-2013 could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    #[error("cannot read {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}:{line}: {reason}")]
    Malformed {
        path: PathBuf,
        line: u64,
        reason: String,
    },
    #[error("{path}: cannot decode image: {source}")]
    Image {
        path: PathBuf,
        source: image::ImageError,
    },
    #[error("{path}: no faces found")]
    Empty { path: PathBuf },
}

/// A set of labelled 48×48 faces.
#[derive(Debug, Clone, Default)]
pub struct Faces {
    /// `len() * FACE_LEN` grey values, face after face.
    pixels: Vec<u8>,
    labels: Vec<u8>,
    usages: Vec<Usage>,
}

impl Faces {
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// The 2,304 grey values of face `index`.
    pub fn face(&self, index: usize) -> &[u8] {
        &self.pixels[index * FACE_LEN..(index + 1) * FACE_LEN]
    }

    /// The FER-2013 label (0..=6) of face `index`.
    pub fn label(&self, index: usize) -> usize {
        usize::from(self.labels[index])
    }

    pub fn labels(&self) -> impl Iterator<Item = usize> + '_ {
        self.labels.iter().map(|&l| usize::from(l))
    }

    pub fn usage(&self, index: usize) -> Usage {
        self.usages[index]
    }

    fn push(&mut self, pixels: &[u8], label: u8, usage: Usage) {
        self.pixels.extend_from_slice(pixels);
        self.labels.push(label);
        self.usages.push(usage);
    }

    /// The faces at `indices`, in that order.
    pub fn select(&self, indices: &[usize]) -> Faces {
        let mut out = Faces::default();
        for &i in indices {
            out.push(self.face(i), self.labels[i], self.usages[i]);
        }
        out
    }

    /// The faces whose usage is `usage`.
    pub fn with_usage(&self, usage: Usage) -> Faces {
        let indices: Vec<usize> = (0..self.len())
            .filter(|&i| self.usages[i] == usage)
            .collect();
        self.select(&indices)
    }

    /// The first `n` faces of each class (or all of a class with fewer), for small runs.
    pub fn take_per_class(&self, n: usize) -> Faces {
        let mut taken = [0usize; 7];
        let indices: Vec<usize> = (0..self.len())
            .filter(|&i| {
                let label = self.label(i);
                taken[label] += 1;
                taken[label] <= n
            })
            .collect();
        self.select(&indices)
    }

    /// The same faces mirrored left-right (labels and usages kept).
    pub fn mirrored(&self) -> Faces {
        let mut out = Faces::default();
        for i in 0..self.len() {
            let mirrored: Vec<u8> = self
                .face(i)
                .chunks_exact(FACE_SIDE)
                .flat_map(|row| row.iter().rev().copied())
                .collect();
            out.push(&mirrored, self.labels[i], self.usages[i]);
        }
        out
    }

    /// How many faces of each class.
    pub fn class_counts(&self) -> [usize; 7] {
        let mut counts = [0; 7];
        for label in self.labels() {
            counts[label] += 1;
        }
        counts
    }

    /// Splits into (train, validation): `fraction` of every class goes to validation, chosen
    /// by a seeded shuffle, so both keep the class balance and the split is reproducible.
    pub fn stratified_split(&self, fraction: f64, seed: u64) -> (Faces, Faces) {
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        let mut train = Vec::new();
        let mut validation = Vec::new();
        for class in 0..7 {
            let mut members: Vec<usize> = (0..self.len())
                .filter(|&i| self.label(i) == class)
                .collect();
            members.shuffle(&mut rng);
            let n_validation = (members.len() as f64 * fraction).round() as usize;
            validation.extend_from_slice(&members[..n_validation]);
            train.extend_from_slice(&members[n_validation..]);
        }
        train.sort_unstable();
        validation.sort_unstable();
        (self.select(&train), self.select(&validation))
    }
}

/// Loads FER-2013 from `path`: a CSV (`.csv` or `.csv.gz`) or a folder in the per-class
/// image layout (`train/<class>/*.jpg`, `test/<class>/*.jpg`).
pub fn load(path: &Path) -> Result<Faces, DataError> {
    let faces = if path.is_dir() {
        load_folder(path)?
    } else {
        load_csv(path)?
    };
    if faces.is_empty() {
        return Err(DataError::Empty {
            path: path.to_owned(),
        });
    }
    Ok(faces)
}

/// Loads the Kaggle CSV layout, header `emotion,pixels,Usage`; gzip is detected by content.
pub fn load_csv(path: &Path) -> Result<Faces, DataError> {
    let io_error = |source| DataError::Io {
        path: path.to_owned(),
        source,
    };
    let mut file = BufReader::new(File::open(path).map_err(io_error)?);
    let is_gzip = file
        .fill_buf()
        .map_err(io_error)?
        .starts_with(&[0x1f, 0x8b]);
    let reader: Box<dyn Read> = if is_gzip {
        Box::new(MultiGzDecoder::new(file))
    } else {
        Box::new(file)
    };
    parse_csv(reader, path)
}

fn parse_csv(reader: impl Read, path: &Path) -> Result<Faces, DataError> {
    let mut csv = csv::ReaderBuilder::new()
        .has_headers(true)
        .from_reader(reader);
    let malformed = |line: u64, reason: String| DataError::Malformed {
        path: path.to_owned(),
        line,
        reason,
    };
    let headers = csv
        .headers()
        .map_err(|e| malformed(1, e.to_string()))?
        .clone();
    let column = |name: &str| {
        headers
            .iter()
            .position(|h| h.trim() == name)
            .ok_or_else(|| {
                malformed(
                    1,
                    format!(
                        "header has no `{name}` column (got `{}`)",
                        headers.iter().collect::<Vec<_>>().join(",")
                    ),
                )
            })
    };
    let (emotion_col, pixels_col, usage_col) =
        (column("emotion")?, column("pixels")?, column("Usage")?);

    let mut faces = Faces::default();
    let mut pixels = Vec::with_capacity(FACE_LEN);
    let mut record = csv::StringRecord::new();
    loop {
        let line = csv.position().line();
        match csv.read_record(&mut record) {
            Ok(false) => break,
            Ok(true) => {}
            Err(e) => return Err(malformed(line, e.to_string())),
        }
        let field = |col: usize| record.get(col).unwrap_or("");
        let label = parse_label(field(emotion_col)).map_err(|r| malformed(line, r))?;
        parse_pixels(field(pixels_col), &mut pixels).map_err(|r| malformed(line, r))?;
        let usage = field(usage_col).parse().map_err(|r| malformed(line, r))?;
        faces.push(&pixels, label, usage);
    }
    Ok(faces)
}

fn parse_label(text: &str) -> Result<u8, String> {
    text.trim()
        .parse::<u8>()
        .ok()
        .filter(|&l| l < 7)
        .ok_or_else(|| format!("emotion `{text}` is not a label 0..6"))
}

fn parse_pixels(text: &str, out: &mut Vec<u8>) -> Result<(), String> {
    out.clear();
    for token in text.split_ascii_whitespace() {
        let value = token
            .parse::<u8>()
            .map_err(|_| format!("pixel value `{token}` is not a grey value 0..255"))?;
        out.push(value);
    }
    if out.len() != FACE_LEN {
        return Err(format!(
            "expected {FACE_LEN} pixel values (48×48), found {}",
            out.len()
        ));
    }
    Ok(())
}

/// Loads the folder-per-class layout: `train/` is `Training`, `test/` is `PublicTest`;
/// class folders are named as [`Expression::name`]. Images of other sizes are resized by the
/// shared preprocessing.
pub fn load_folder(root: &Path) -> Result<Faces, DataError> {
    let mut faces = Faces::default();
    for (split, usage) in [("train", Usage::Training), ("test", Usage::PublicTest)] {
        let split_dir = root.join(split);
        if !split_dir.is_dir() {
            continue;
        }
        for expression in Expression::ALL {
            let class_dir = split_dir.join(expression.name());
            if !class_dir.is_dir() {
                continue;
            }
            for image_path in sorted_images(&class_dir)? {
                let pixels = read_grey_face(&image_path)?;
                faces.push(&pixels, expression.label() as u8, usage);
            }
        }
    }
    Ok(faces)
}

fn sorted_images(dir: &Path) -> Result<Vec<PathBuf>, DataError> {
    let io_error = |source| DataError::Io {
        path: dir.to_owned(),
        source,
    };
    let mut paths = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(io_error)? {
        let path = entry.map_err(io_error)?.path();
        let is_image = path
            .extension()
            .and_then(|e| e.to_str())
            .is_some_and(|e| matches!(e.to_ascii_lowercase().as_str(), "jpg" | "jpeg" | "png"));
        if is_image {
            paths.push(path);
        }
    }
    paths.sort();
    Ok(paths)
}

/// A photo as a 48×48 grey face, greyed by the one shared formula (BT.601, as the camera
/// path greys frames; the `image` crate's `into_luma8` would use Rec. 709 weights).
fn read_grey_face(path: &Path) -> Result<Vec<u8>, DataError> {
    let image = image::open(path).map_err(|source| DataError::Image {
        path: path.to_owned(),
        source,
    })?;
    let (width, height) = (image.width() as usize, image.height() as usize);
    let grey = match image {
        image::DynamicImage::ImageLuma8(grey) => GreyBuffer::new(width, height, grey.into_raw()),
        other => GreyBuffer::from_rgb(width, height, other.into_rgb8().as_raw()),
    }
    .map_err(|e| DataError::Malformed {
        path: path.to_owned(),
        line: 0,
        reason: e.to_string(),
    })?;
    Ok(face_pixels(grey.image()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(label: &str, value: &str, count: usize, usage: &str) -> String {
        let pixels = vec![value; count].join(" ");
        format!("{label},{pixels},{usage}\n")
    }

    fn parse(text: &str) -> Result<Faces, DataError> {
        parse_csv(text.as_bytes(), Path::new("test.csv"))
    }

    #[test]
    fn mirrored_reverses_every_row_and_keeps_labels() {
        let pixels: Vec<String> = (0..FACE_LEN).map(|i| (i % FACE_SIDE).to_string()).collect();
        let text = format!("emotion,pixels,Usage\n4,{},Training\n", pixels.join(" "));
        let faces = parse(&text).expect("parses");
        let mirrored = faces.mirrored();
        assert_eq!(mirrored.label(0), 4);
        assert_eq!(mirrored.usage(0), Usage::Training);
        for y in 0..FACE_SIDE {
            for x in 0..FACE_SIDE {
                assert_eq!(
                    usize::from(mirrored.face(0)[y * FACE_SIDE + x]),
                    FACE_SIDE - 1 - x
                );
            }
        }
        assert_eq!(mirrored.mirrored().face(0), faces.face(0));
    }

    #[test]
    fn parses_rows_with_usage() {
        let text = format!(
            "emotion,pixels,Usage\n{}{}",
            row("3", "7", FACE_LEN, "Training"),
            row("6", "255", FACE_LEN, "PublicTest")
        );
        let faces = parse(&text).unwrap();
        assert_eq!(faces.len(), 2);
        assert_eq!(faces.label(0), 3);
        assert_eq!(faces.face(1)[FACE_LEN - 1], 255);
        assert_eq!(faces.usage(1), Usage::PublicTest);
        assert_eq!(faces.with_usage(Usage::Training).len(), 1);
    }

    #[test]
    fn short_pixel_row_names_file_and_line() {
        let text = format!(
            "emotion,pixels,Usage\n{}{}",
            row("3", "7", FACE_LEN, "Training"),
            row("3", "7", 100, "Training")
        );
        let message = parse(&text).unwrap_err().to_string();
        assert!(message.starts_with("test.csv:3:"), "{message}");
        assert!(message.contains("found 100"), "{message}");
    }

    #[test]
    fn bad_label_value_and_usage_are_errors() {
        for bad in [
            row("9", "7", FACE_LEN, "Training"),
            row("2", "300", FACE_LEN, "Training"),
            row("2", "x", FACE_LEN, "Training"),
            row("2", "7", FACE_LEN, "Holdout"),
        ] {
            let text = format!("emotion,pixels,Usage\n{bad}");
            let err = parse(&text).unwrap_err();
            assert!(matches!(err, DataError::Malformed { line: 2, .. }), "{err}");
        }
        let err = parse("label,pixels\n").unwrap_err();
        assert!(err.to_string().contains("no `emotion` column"), "{err}");
    }

    #[test]
    fn stratified_split_keeps_every_class_and_is_seeded() {
        let mut text = String::from("emotion,pixels,Usage\n");
        for i in 0..70 {
            text += &row(&(i % 7).to_string(), &i.to_string(), FACE_LEN, "Training");
        }
        let faces = parse(&text).unwrap();
        let (train, validation) = faces.stratified_split(0.2, 1);
        assert_eq!(validation.class_counts(), [2; 7]);
        assert_eq!(train.class_counts(), [8; 7]);
        let (_, again) = faces.stratified_split(0.2, 1);
        assert_eq!(validation.pixels, again.pixels);
    }
}
