//! One frame's analysis: grey it, find faces with the Haar cascade (near the last face when
//! tracking allows), choose the student's face and classify its expression.

use anyhow::{Context, Result};

use crate::classify::FaceClassifier;
use crate::config::KioskConfig;
use crate::detect::group::Group;
use crate::detect::{Cascade, Detector, FaceTracker, GreyImage, Rect};
use crate::hal::Frame;

/// The detector and the classifier, with a grey buffer reused frame after frame.
pub(crate) struct FaceAnalysis {
    detector: Detector,
    classifier: FaceClassifier,
    track_face_frames: u32,
    grey: Vec<u8>,
}

/// A face found in a frame and its expression probabilities (label order).
pub(crate) struct Sighting {
    pub face: Rect,
    pub probabilities: [f32; 7],
}

impl FaceAnalysis {
    pub fn new(config: &KioskConfig, model: &std::path::Path) -> Result<Self> {
        let detector = Detector::new(Cascade::frontal_face()?, config.detect)?;
        let classifier = FaceClassifier::load(model, config.face_margin)
            .with_context(|| format!("cannot load the expression model {}", model.display()))?;
        Ok(Self {
            detector,
            classifier,
            track_face_frames: config.track_face_frames,
            grey: Vec::new(),
        })
    }

    /// The student's face in `frame` and its expression, if there is a face; `tracker`
    /// carries the last face from frame to frame within a lesson.
    pub fn analyse(
        &mut self,
        frame: &Frame,
        tracker: &mut FaceTracker,
    ) -> Result<Option<Sighting>> {
        frame.grey_into(&mut self.grey);
        let grey =
            GreyImage::new(frame.width(), frame.height(), &self.grey).context("grey frame")?;
        let groups = tracker.detect(&mut self.detector, grey, self.track_face_frames);
        let face = student_face(&groups);
        tracker.follow(face);
        let Some(face) = face else { return Ok(None) };
        let probabilities = self.classifier.classify(grey, face)?;
        Ok(Some(Sighting {
            face,
            probabilities,
        }))
    }
}

/// The student's face: the detection backed by the most raw hits, the larger on a tie.
/// Picking by size alone (the paper's "largest face") lets a big background false positive
/// win over a real face, as it does on the demo clip's astronaut frames.
fn student_face(groups: &[Group]) -> Option<Rect> {
    groups
        .iter()
        .max_by_key(|g| (g.neighbors, g.rect.area()))
        .map(|g| g.rect)
}
