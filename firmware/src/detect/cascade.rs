//! Loads OpenCV's cascade XML (the current `opencv_storage` format written by
//! `opencv_traincascade`): stump-based boosted stages over Haar features.
//!
//! Only what the frontal-face cascades use is accepted: `BOOST` stages, `HAAR` features,
//! depth-1 trees (stumps). Tilted features, LBP/HOG features and deeper trees are rejected
//! with a clear error rather than evaluated wrongly. Thresholds are stored as OpenCV keeps
//! them (`f32`, stage thresholds lowered by OpenCV's `THRESHOLD_EPS` of 1e-5) so that the
//! evaluator reaches the same decisions.
//!
//! A cascade file is outside data: every number is checked before it is used — window sides
//! within [`MAX_WINDOW_SIDE`], rectangles of whole, non-negative pixels inside the window
//! (compared in `f64`, before any cast), thresholds and leaf values finite, the file at most
//! [`MAX_CASCADE_BYTES`] — so the scan's corner offsets can neither wrap nor index out of
//! its tables.

#![deny(clippy::arithmetic_side_effects, clippy::cast_possible_truncation)]

use std::path::{Path, PathBuf};

use roxmltree::{Document, Node};

/// The largest detection window side accepted (OpenCV's face cascades use 20 to 24; the
/// scan's corner offsets are `u32` and the pyramid starts at the window's size).
pub const MAX_WINDOW_SIDE: u32 = 512;

/// The smallest: the variance is normalised over the window less a 1-pixel border.
pub const MIN_WINDOW_SIDE: u32 = 3;

/// The largest cascade file read (OpenCV's biggest shipped cascade is under 3 MB).
pub const MAX_CASCADE_BYTES: u64 = 64 * 1024 * 1024;

/// OpenCV subtracts this from every stage threshold when it loads a cascade.
const THRESHOLD_EPS: f32 = 1e-5;

/// Why a cascade could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum CascadeError {
    #[error("cannot read cascade {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cascade is not well-formed XML: {0}")]
    Xml(#[from] roxmltree::Error),
    #[error("cascade XML has no <{0}> element")]
    Missing(&'static str),
    #[error("cascade XML: <{element}> holds `{text}`, not {expected}")]
    BadValue {
        element: &'static str,
        text: String,
        expected: &'static str,
    },
    #[error("unsupported cascade: {0}")]
    Unsupported(String),
    #[error("cascade is inconsistent: {0}")]
    Inconsistent(String),
}

/// A rectangle of a Haar feature, in window coordinates, with its weight.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct WeightedRect {
    pub x: u32,
    pub y: u32,
    pub width: u32,
    pub height: u32,
    pub weight: f32,
}

/// A Haar feature: two or three weighted rectangles.
#[derive(Debug, Clone, PartialEq)]
pub struct Feature {
    pub rects: Vec<WeightedRect>,
}

/// A depth-1 weak classifier: `left` if the normalised feature value is below `threshold`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Stump {
    pub feature: usize,
    pub threshold: f32,
    pub left: f32,
    pub right: f32,
}

/// A boosted stage: the window passes if its stumps' sum reaches `threshold`.
#[derive(Debug, Clone, PartialEq)]
pub struct Stage {
    pub threshold: f32,
    pub stumps: Vec<Stump>,
}

/// A whole cascade.
#[derive(Debug, Clone, PartialEq)]
pub struct Cascade {
    pub window_width: u32,
    pub window_height: u32,
    pub stages: Vec<Stage>,
    pub features: Vec<Feature>,
}

/// OpenCV's frontal-face cascade, shipped in the binary (licence header inside the XML).
pub static FRONTAL_FACE_XML: &str =
    include_str!("../../assets/haarcascade_frontalface_default.xml");

impl Cascade {
    /// The bundled `haarcascade_frontalface_default.xml`.
    pub fn frontal_face() -> Result<Cascade, CascadeError> {
        Cascade::from_xml(FRONTAL_FACE_XML)
    }

    pub fn load(path: &Path) -> Result<Cascade, CascadeError> {
        use std::io::Read as _;
        let io = |source| CascadeError::Io {
            path: path.to_owned(),
            source,
        };
        let file = std::fs::File::open(path).map_err(io)?;
        let mut text = String::new();
        file.take(MAX_CASCADE_BYTES + 1)
            .read_to_string(&mut text)
            .map_err(io)?;
        if text.len() as u64 > MAX_CASCADE_BYTES {
            return Err(CascadeError::Inconsistent(format!(
                "the file is over {MAX_CASCADE_BYTES} bytes"
            )));
        }
        Cascade::from_xml(&text)
    }

    pub fn from_xml(text: &str) -> Result<Cascade, CascadeError> {
        let document = Document::parse(text)?;
        let cascade = document
            .descendants()
            .find(|n| n.has_tag_name("cascade"))
            .ok_or(CascadeError::Missing("cascade"))?;
        check_kind(&cascade)?;
        let window_width = window_side(&cascade, "width")?;
        let window_height = window_side(&cascade, "height")?;
        let features = child(&cascade, "features")?
            .children()
            .filter(Node::is_element)
            .map(|n| parse_feature(&n, window_width, window_height))
            .collect::<Result<Vec<_>, _>>()?;
        let stages = child(&cascade, "stages")?
            .children()
            .filter(Node::is_element)
            .map(|n| parse_stage(&n, features.len()))
            .collect::<Result<Vec<_>, _>>()?;
        if stages.is_empty() {
            return Err(CascadeError::Inconsistent("no stages".into()));
        }
        let declared: Option<usize> = optional_child(&cascade, "stageNum")
            .map(|n| parse_text(&n, "stageNum"))
            .transpose()?;
        if let Some(declared) = declared.filter(|&d| d != stages.len()) {
            return Err(CascadeError::Inconsistent(format!(
                "stageNum says {declared} stages, found {} (truncated file?)",
                stages.len()
            )));
        }
        Ok(Cascade {
            window_width,
            window_height,
            stages,
            features,
        })
    }
}

fn check_kind(cascade: &Node) -> Result<(), CascadeError> {
    let stage_type = text_of(&child(cascade, "stageType")?);
    if stage_type != "BOOST" {
        return Err(CascadeError::Unsupported(format!(
            "stage type {stage_type}"
        )));
    }
    let feature_type = text_of(&child(cascade, "featureType")?);
    if feature_type != "HAAR" {
        return Err(CascadeError::Unsupported(format!(
            "feature type {feature_type} (only HAAR is evaluated)"
        )));
    }
    Ok(())
}

/// The window's `width` or `height`, a whole number of pixels within the stated bounds.
fn window_side(cascade: &Node, name: &'static str) -> Result<u32, CascadeError> {
    let side: u64 = parse_child(cascade, name)?;
    u32::try_from(side)
        .ok()
        .filter(|side| (MIN_WINDOW_SIDE..=MAX_WINDOW_SIDE).contains(side))
        .ok_or_else(|| CascadeError::BadValue {
            element: name,
            text: side.to_string(),
            expected: "a window side of 3 to 512 pixels",
        })
}

/// A finite number: NaN or an infinity would make every comparison with it false (or true).
fn finite(value: f32, element: &'static str) -> Result<f32, CascadeError> {
    if value.is_finite() {
        Ok(value)
    } else {
        Err(CascadeError::BadValue {
            element,
            text: value.to_string(),
            expected: "a finite number",
        })
    }
}

fn parse_stage(node: &Node, n_features: usize) -> Result<Stage, CascadeError> {
    let threshold = finite(parse_child(node, "stageThreshold")?, "stageThreshold")?;
    let stumps = child(node, "weakClassifiers")?
        .children()
        .filter(Node::is_element)
        .map(|n| parse_stump(&n, n_features))
        .collect::<Result<Vec<_>, _>>()?;
    if stumps.is_empty() {
        return Err(CascadeError::Inconsistent(
            "a stage has no weak classifiers".into(),
        ));
    }
    Ok(Stage {
        threshold: threshold - THRESHOLD_EPS,
        stumps,
    })
}

fn parse_stump(node: &Node, n_features: usize) -> Result<Stump, CascadeError> {
    let internal = numbers::<f64>(&child(node, "internalNodes")?, "internalNodes")?;
    let leaves = numbers::<f32>(&child(node, "leafValues")?, "leafValues")?;
    if internal.len() != 4 || leaves.len() != 2 {
        return Err(CascadeError::Unsupported(format!(
            "weak classifier with {} internal values and {} leaves (only stumps are supported)",
            internal.len(),
            leaves.len()
        )));
    }
    // Compared in f64 before the cast: NaN, negatives, fractions and huge values all fail.
    let index = internal[2];
    let valid_index = index.fract() == 0.0 && (0.0..n_features as f64).contains(&index);
    if !valid_index {
        return Err(CascadeError::Inconsistent(format!(
            "weak classifier uses feature {index} of {n_features}"
        )));
    }
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    let feature = index as usize; // a whole number in 0..n_features (checked above)
    #[allow(clippy::cast_possible_truncation)] // to OpenCV's f32; a huge value is inf, refused
    let threshold = internal[3] as f32;
    Ok(Stump {
        feature,
        threshold: finite(threshold, "internalNodes")?,
        left: finite(leaves[0], "leafValues")?,
        right: finite(leaves[1], "leafValues")?,
    })
}

fn parse_feature(
    node: &Node,
    window_width: u32,
    window_height: u32,
) -> Result<Feature, CascadeError> {
    if let Some(tilted) = optional_child(node, "tilted") {
        if text_of(&tilted) != "0" {
            return Err(CascadeError::Unsupported("tilted Haar features".into()));
        }
    }
    let rects = child(node, "rects")?
        .children()
        .filter(Node::is_element)
        .map(|n| parse_rect(&n, window_width, window_height))
        .collect::<Result<Vec<_>, _>>()?;
    if !(2..=3).contains(&rects.len()) {
        return Err(CascadeError::Inconsistent(format!(
            "a feature has {} rectangles (2 or 3 expected)",
            rects.len()
        )));
    }
    Ok(Feature { rects })
}

fn parse_rect(
    node: &Node,
    window_width: u32,
    window_height: u32,
) -> Result<WeightedRect, CascadeError> {
    let values = numbers::<f64>(node, "rects")?;
    let [x, y, w, h, weight] = values[..] else {
        return Err(CascadeError::BadValue {
            element: "rects",
            text: text_of(node).to_owned(),
            expected: "x y width height weight",
        });
    };
    // All in f64, before any cast: a value that does not fit is refused, never saturated
    // or wrapped (x = 4294967295 once passed a u32 bounds check by wrapping x + width).
    let whole = [x, y, w, h]
        .iter()
        .all(|v| v.is_finite() && v.fract() == 0.0);
    let inside = whole
        && x >= 0.0
        && y >= 0.0
        && w > 0.0
        && h > 0.0
        && x + w <= f64::from(window_width)
        && y + h <= f64::from(window_height);
    if !inside {
        return Err(CascadeError::Inconsistent(format!(
            "feature rectangle {x} {y} {w} {h} leaves the {window_width}×{window_height} window"
        )));
    }
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    let pixels = |v: f64| v as u32; // whole and within 0..=MAX_WINDOW_SIDE (checked above)
    Ok(WeightedRect {
        x: pixels(x),
        y: pixels(y),
        width: pixels(w),
        height: pixels(h),
        #[allow(clippy::cast_possible_truncation)] // f32 as OpenCV keeps it; inf is refused
        weight: finite(weight as f32, "rects")?,
    })
}

fn child<'a, 'input>(
    node: &Node<'a, 'input>,
    name: &'static str,
) -> Result<Node<'a, 'input>, CascadeError> {
    optional_child(node, name).ok_or(CascadeError::Missing(name))
}

fn optional_child<'a, 'input>(node: &Node<'a, 'input>, name: &str) -> Option<Node<'a, 'input>> {
    node.children().find(|n| n.has_tag_name(name))
}

fn text_of<'a>(node: &Node<'a, '_>) -> &'a str {
    node.text().unwrap_or("").trim()
}

fn parse_text<T: std::str::FromStr>(node: &Node, element: &'static str) -> Result<T, CascadeError> {
    let text = text_of(node);
    text.parse().map_err(|_| CascadeError::BadValue {
        element,
        text: text.to_owned(),
        expected: "a number",
    })
}

fn parse_child<T: std::str::FromStr>(node: &Node, name: &'static str) -> Result<T, CascadeError> {
    parse_text(&child(node, name)?, name)
}

fn numbers<T: std::str::FromStr>(
    node: &Node,
    element: &'static str,
) -> Result<Vec<T>, CascadeError> {
    text_of(node)
        .split_ascii_whitespace()
        .map(|token| {
            token.parse().map_err(|_| CascadeError::BadValue {
                element,
                text: token.to_owned(),
                expected: "a number",
            })
        })
        .collect()
}

#[cfg(test)]
#[allow(clippy::arithmetic_side_effects, clippy::cast_possible_truncation)] // test inputs
mod tests {
    use super::*;

    #[test]
    fn bundled_frontal_face_cascade_loads() {
        let cascade = Cascade::frontal_face().unwrap();
        assert_eq!((cascade.window_width, cascade.window_height), (24, 24));
        assert_eq!(cascade.stages.len(), 25);
        assert_eq!(cascade.stages[0].stumps.len(), 9);
        assert_eq!(cascade.features.len(), 2913);
        // First stump and feature of the file, read by hand from the XML.
        let first = cascade.stages[0].stumps[0];
        assert_eq!(first.feature, 0);
        assert_eq!(
            first.threshold,
            "-3.1511999666690826e-02".parse::<f32>().unwrap()
        );
        assert_eq!(first.left, "2.0875380039215088".parse::<f32>().unwrap());
        assert_eq!(
            cascade.stages[0].threshold,
            "-5.0425500869750977".parse::<f32>().unwrap() - THRESHOLD_EPS
        );
        assert_eq!(
            cascade.features[0].rects[1],
            WeightedRect {
                x: 6,
                y: 7,
                width: 12,
                height: 3,
                weight: 3.0
            }
        );
    }

    /// The first feature's first rectangle (`6 4 12 9 -1.`) replaced by `rect`.
    fn with_first_rect(rect: &str) -> String {
        FRONTAL_FACE_XML.replacen("6 4 12 9 -1.</_>", &format!("{rect}</_>"), 1)
    }

    #[test]
    fn a_rectangle_at_u32_max_is_refused_not_wrapped() {
        // Issue 28, exactly: x = 4294967295 once saturated to u32::MAX, x + width wrapped
        // to 0 in release and the scan indexed out of bounds in a rayon worker.
        let xml = with_first_rect("4294967295 0 1 1 -1.");
        assert_ne!(xml, FRONTAL_FACE_XML);
        let err = Cascade::from_xml(&xml).unwrap_err();
        assert!(err.to_string().contains("leaves the 24×24 window"), "{err}");
        // The class around it: every coordinate at every extreme, and non-whole values.
        for extreme in [
            "4294967295",
            "4294967296",
            "18446744073709551615",
            "-9223372036854775808",
            "1e300",
            "-1e300",
            "NaN",
            "inf",
            "-inf",
            "-0.5",
            "0.5",
            "24",
        ] {
            for field in 0..4 {
                let mut values = ["6", "4", "12", "9"];
                values[field] = extreme;
                let xml = with_first_rect(&format!("{} -1.", values.join(" ")));
                assert!(
                    Cascade::from_xml(&xml).is_err(),
                    "rect field {field} = {extreme} was accepted"
                );
            }
            let xml = with_first_rect(&format!("6 4 12 9 {extreme}"));
            let finite_weight = extreme.parse::<f32>().is_ok_and(f32::is_finite);
            assert_eq!(
                Cascade::from_xml(&xml).is_ok(),
                finite_weight,
                "weight {extreme}"
            );
        }
    }

    #[test]
    fn non_finite_thresholds_and_leaves_are_refused() {
        // Issue 28, exactly: <stageThreshold>NaN was accepted and the scan reported a face.
        let first = "<stageThreshold>-5.0425500869750977e+00</stageThreshold>";
        for bad in ["NaN", "nan", "inf", "-inf", "1e39", "-1e39"] {
            let xml = FRONTAL_FACE_XML.replacen(
                first,
                &format!("<stageThreshold>{bad}</stageThreshold>"),
                1,
            );
            let err = Cascade::from_xml(&xml).unwrap_err();
            assert!(err.to_string().contains("stageThreshold"), "{bad}: {err}");
            let leaves = FRONTAL_FACE_XML.replacen(
                "<leafValues>\n            2.0875380039215088e+00",
                &format!("<leafValues>\n            {bad}"),
                1,
            );
            assert_ne!(leaves, FRONTAL_FACE_XML);
            assert!(Cascade::from_xml(&leaves).is_err(), "leaf {bad}");
        }
    }

    #[test]
    fn window_sides_out_of_bounds_are_refused() {
        // Issue 28, exactly: <width>4000000000 and <height>4000000000 were accepted.
        for (tag, original) in [
            ("width", "<width>24</width>"),
            ("height", "<height>24</height>"),
        ] {
            for bad in [
                "4000000000",
                "4294967295",
                "18446744073709551615",
                "0",
                "1",
                "2",
                "513",
                "-1",
                "NaN",
                "1e300",
            ] {
                let xml = FRONTAL_FACE_XML.replacen(original, &format!("<{tag}>{bad}</{tag}>"), 1);
                assert_ne!(xml, FRONTAL_FACE_XML);
                assert!(
                    Cascade::from_xml(&xml).is_err(),
                    "{tag} = {bad} was accepted"
                );
            }
        }
    }

    #[test]
    fn feature_indices_must_be_whole_and_listed() {
        let first = "0 -1 0 -3.1511999666690826e-02";
        assert!(FRONTAL_FACE_XML.contains(first));
        for bad in ["NaN", "-1", "0.5", "2913", "1e300", "inf"] {
            let xml =
                FRONTAL_FACE_XML.replacen(first, &format!("0 -1 {bad} -3.1511999666690826e-02"), 1);
            assert!(Cascade::from_xml(&xml).is_err(), "feature index {bad}");
        }
    }

    #[test]
    fn truncated_xml_is_a_clear_error() {
        let cut = &FRONTAL_FACE_XML[..FRONTAL_FACE_XML.len() / 2];
        let err = Cascade::from_xml(cut).unwrap_err();
        assert!(matches!(err, CascadeError::Xml(_)), "{err}");
    }

    #[test]
    fn missing_stages_and_tilted_features_are_rejected() {
        let without_stages = FRONTAL_FACE_XML
            .replace("<stages>", "<stagez>")
            .replace("</stages>", "</stagez>");
        assert!(matches!(
            Cascade::from_xml(&without_stages),
            Err(CascadeError::Missing("stages"))
        ));
        let tilted = FRONTAL_FACE_XML.replacen("<rects>", "<tilted>1</tilted><rects>", 1);
        assert!(matches!(
            Cascade::from_xml(&tilted),
            Err(CascadeError::Unsupported(_))
        ));
        let lbp = FRONTAL_FACE_XML.replace("<featureType>HAAR", "<featureType>LBP");
        assert!(matches!(
            Cascade::from_xml(&lbp),
            Err(CascadeError::Unsupported(_))
        ));
    }
}
