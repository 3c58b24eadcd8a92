//! Loads OpenCV's cascade XML (the current `opencv_storage` format written by
//! `opencv_traincascade`): stump-based boosted stages over Haar features.
//!
//! Only what the frontal-face cascades use is accepted: `BOOST` stages, `HAAR` features,
//! depth-1 trees (stumps). Tilted features, LBP/HOG features and deeper trees are rejected
//! with a clear error rather than evaluated wrongly. Thresholds are stored as OpenCV keeps
//! them (`f32`, stage thresholds lowered by OpenCV's `THRESHOLD_EPS` of 1e-5) so that the
//! evaluator reaches the same decisions.

use std::path::{Path, PathBuf};

use roxmltree::{Document, Node};

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
        let text = std::fs::read_to_string(path).map_err(|source| CascadeError::Io {
            path: path.to_owned(),
            source,
        })?;
        Cascade::from_xml(&text)
    }

    pub fn from_xml(text: &str) -> Result<Cascade, CascadeError> {
        let document = Document::parse(text)?;
        let cascade = document
            .descendants()
            .find(|n| n.has_tag_name("cascade"))
            .ok_or(CascadeError::Missing("cascade"))?;
        check_kind(&cascade)?;
        let window_width = parse_child(&cascade, "width")?;
        let window_height = parse_child(&cascade, "height")?;
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

fn parse_stage(node: &Node, n_features: usize) -> Result<Stage, CascadeError> {
    let threshold: f32 = parse_child(node, "stageThreshold")?;
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
    let feature = internal[2] as usize;
    if internal[2] < 0.0 || feature >= n_features {
        return Err(CascadeError::Inconsistent(format!(
            "weak classifier uses feature {} of {n_features}",
            internal[2]
        )));
    }
    Ok(Stump {
        feature,
        threshold: internal[3] as f32,
        left: leaves[0],
        right: leaves[1],
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
    let values = numbers::<f32>(node, "rects")?;
    let [x, y, w, h, weight] = values[..] else {
        return Err(CascadeError::BadValue {
            element: "rects",
            text: text_of(node).to_owned(),
            expected: "x y width height weight",
        });
    };
    let rect = WeightedRect {
        x: x as u32,
        y: y as u32,
        width: w as u32,
        height: h as u32,
        weight,
    };
    let inside = x >= 0.0 && y >= 0.0 && w > 0.0 && h > 0.0;
    if !inside || rect.x + rect.width > window_width || rect.y + rect.height > window_height {
        return Err(CascadeError::Inconsistent(format!(
            "feature rectangle {x} {y} {w} {h} leaves the {window_width}×{window_height} window"
        )));
    }
    Ok(rect)
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
