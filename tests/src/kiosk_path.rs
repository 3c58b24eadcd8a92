//! FER-2013 faces as the kiosk sees them: each 48×48 face enlarged into a 640×480 camera
//! frame, found by the kiosk's own detector ([`FaceAnalysis::find_face`], default config)
//! and classified through the kiosk's crop ([`FaceClassifier`], the configured margin) — the
//! path of a camera frame. What the lesson estimate's calibration is counted on
//! (`calibrate`) and what the lesson benchmark (`lessons`) draws its faces from: measured,
//! a model's confusions on this path differ from those on the plain 48×48 faces
//! (`kiosk_path_calibration`).

use std::path::Path;

use anyhow::Context;
use ekspresi_common::estimate::LabelledFace;
use ekspresi_common::{Expression, GreyImage};
use firmware::classify::FaceClassifier;
use firmware::config::KioskConfig;
use firmware::detect::track::FaceTracker;
use firmware::devices::Frame;
use firmware::pipeline::FaceAnalysis;
use image::{imageops, GrayImage, Luma, RgbImage};
use model_quant::data::Faces;
use model_quant::lessons::category_of;

/// Frame size, as the kiosk's camera gives it.
pub const FRAME: (u32, u32) = (640, 480);
/// Sides a face is enlarged to, taken in turn: a student at a desk fills 140–240 px of a
/// 640-pixel frame.
pub const FACE_SIDES: [u32; 3] = [144, 192, 240];
/// The frame's background grey.
const BACKGROUND: u8 = 110;

/// Face `index` of `faces`, enlarged to `side` and centred in a grey frame.
pub fn face_frame(faces: &Faces, index: usize, side: u32) -> anyhow::Result<GrayImage> {
    let face = GrayImage::from_raw(48, 48, faces.face(index).to_vec()).context("48×48")?;
    let big = imageops::resize(&face, side, side, imageops::FilterType::Triangle);
    let mut frame = GrayImage::from_pixel(FRAME.0, FRAME.1, Luma([BACKGROUND]));
    imageops::overlay(
        &mut frame,
        &big,
        i64::from((FRAME.0 - side) / 2),
        i64::from((FRAME.1 - side) / 2),
    );
    Ok(frame)
}

/// The kiosk's view of model `model`: detector and classifier as the default config
/// builds them.
pub struct KioskView {
    analysis: FaceAnalysis,
    classifier: FaceClassifier,
}

impl KioskView {
    pub fn new(model: &Path) -> anyhow::Result<Self> {
        let config = KioskConfig::default();
        Ok(Self {
            analysis: FaceAnalysis::new(&config, model)?,
            classifier: FaceClassifier::load(model, config.face_margin)?,
        })
    }

    /// The model's seven probabilities for the face in `grey`, a frame of its own (no
    /// tracking from an earlier one); `None` when its detector finds no face.
    pub fn probabilities(&mut self, grey: &GrayImage) -> anyhow::Result<Option<[f32; 7]>> {
        let rgb = RgbImage::from_fn(grey.width(), grey.height(), |x, y| {
            let v = grey.get_pixel(x, y)[0];
            image::Rgb([v, v, v])
        });
        let frame = Frame::from_image(rgb, std::time::Duration::ZERO);
        let Some(rect) = self
            .analysis
            .find_face(&frame, &mut FaceTracker::default())?
        else {
            return Ok(None);
        };
        let view = GreyImage::new(grey.width() as usize, grey.height() as usize, grey.as_raw())?;
        Ok(Some(self.classifier.classify(view, rect)?))
    }
}

/// One view of a face: the side it is enlarged to, and whether the frame is mirrored.
#[derive(Clone, Copy)]
struct FaceView {
    side: u32,
    mirrored: bool,
}

/// A face's true category and the model's probabilities in each of its views (`None`: not
/// found in that view).
type SeenFace<const N: usize> = (usize, [Option<[f32; 7]>; N]);

/// The one walk over the faces: each face's true category and the model's probabilities in
/// each of `views_of(i)` (`None`: its detector found no face in that view).
fn walk_faces<const N: usize>(
    model: &Path,
    faces: &Faces,
    views_of: impl Fn(usize) -> [FaceView; N],
) -> anyhow::Result<Vec<SeenFace<N>>> {
    let mut kiosk = KioskView::new(model)?;
    (0..faces.len())
        .map(|i| {
            let truth = Expression::from_label(faces.label(i)).context("label")?;
            let mut seen = [None; N];
            for (probabilities, view) in seen.iter_mut().zip(views_of(i)) {
                let frame = face_frame(faces, i, view.side)?;
                let frame = if view.mirrored {
                    imageops::flip_horizontal(&frame)
                } else {
                    frame
                };
                *probabilities = kiosk.probabilities(&frame)?;
            }
            Ok((truth.category().index(), seen))
        })
        .collect()
}

/// The category of the model's top expression: what the kiosk counts.
fn top_category(probabilities: &[f32; 7]) -> usize {
    Expression::most_probable(probabilities).category().index()
}

/// One view of face `i`, at the side of [`FACE_SIDES`] its position picks: how the
/// calibration and the lesson benchmark see each face.
fn one_view(i: usize) -> [FaceView; 1] {
    [FaceView {
        side: FACE_SIDES[i % FACE_SIDES.len()],
        mirrored: false,
    }]
}

/// The model's seven probabilities for each face on the kiosk's path (`None`: not found),
/// the faces enlarged as in [`kiosk_category_probabilities`].
pub fn kiosk_probabilities(model: &Path, faces: &Faces) -> anyhow::Result<Vec<Option<[f32; 7]>>> {
    Ok(walk_faces(model, faces, one_view)?
        .into_iter()
        .map(|(_, [seen])| seen)
        .collect())
}

/// The seed of a calibration's resampled probability fits (fixed: the same faces give the
/// same calibration, which `shipped_model` checks).
pub const CALIBRATION_SEED: u64 = 27;

/// The faces the kiosk found, each as its true expression label and the model's seven
/// probabilities: what a probability calibration is fitted on and a lesson re-weights.
pub fn kiosk_labelled_faces(model: &Path, faces: &Faces) -> anyhow::Result<Vec<LabelledFace>> {
    Ok(kiosk_probabilities(model, faces)?
        .into_iter()
        .enumerate()
        .filter_map(|(i, seen)| Some((faces.label(i), seen?.map(f64::from))))
        .collect())
}

/// Each labelled face's (true, given) categories: the adjusted count's view of it.
pub fn category_pairs(faces: &[LabelledFace]) -> Vec<(usize, usize)> {
    faces
        .iter()
        .map(|(label, p)| (category_of(*label), top_category(&p.map(|v| v as f32))))
        .collect()
}

/// A face the kiosk found: its true category, the category of the model's top expression
/// (what the kiosk counts) and the model's probabilities summed by category.
pub type SoftFace = (usize, usize, [f64; 3]);

/// Each face's true category and the model's category probabilities on the kiosk's path
/// (`None`: not found), the faces enlarged to [`FACE_SIDES`] in turn.
pub fn kiosk_category_probabilities(
    model: &Path,
    faces: &Faces,
) -> anyhow::Result<Vec<Option<SoftFace>>> {
    Ok(walk_faces(model, faces, one_view)?
        .into_iter()
        .map(|(truth, [seen])| {
            seen.map(|p| {
                let mut by_category = [0.0; 3];
                for (expression, &probability) in Expression::ALL.iter().zip(&p) {
                    by_category[expression.category().index()] += f64::from(probability);
                }
                (truth, top_category(&p), by_category)
            })
        })
        .collect())
}

/// Each face's true category and the category the kiosk gave it (`None`: not found), the
/// faces enlarged as in [`kiosk_category_probabilities`].
pub fn kiosk_categories(
    model: &Path,
    faces: &Faces,
) -> anyhow::Result<Vec<Option<(usize, usize)>>> {
    Ok(kiosk_category_probabilities(model, faces)?
        .into_iter()
        .map(|soft| soft.map(|(truth, given, _)| (truth, given)))
        .collect())
}

/// A face's (true, given) categories in six views (`None`: not found in that view).
pub type SixViews = [Option<(usize, usize)>; 6];

/// Each face's (true, given) categories in six views: at each side of [`FACE_SIDES`] in
/// turn, as it is and mirrored (`views[2 * s]`, `views[2 * s + 1]`; `None`: not found).
/// [`kiosk_categories`]'s view of face `i` is `views[2 * (i % 3)]`.
pub fn kiosk_categories_six_views(model: &Path, faces: &Faces) -> anyhow::Result<Vec<SixViews>> {
    let six_views = |_| {
        std::array::from_fn(|v| FaceView {
            side: FACE_SIDES[v / 2],
            mirrored: v % 2 == 1,
        })
    };
    Ok(walk_faces(model, faces, six_views)?
        .into_iter()
        .map(|(truth, seen)| seen.map(|p| p.map(|p| (truth, top_category(&p)))))
        .collect())
}

/// The pairs of the faces the kiosk found.
pub fn found(pairs: &[Option<(usize, usize)>]) -> Vec<(usize, usize)> {
    pairs.iter().flatten().copied().collect()
}
