//! One frame's analysis: grey it, find faces with the Haar cascade (near the last face when
//! tracking allows), choose the student's face and classify its expression.
//!
//! The student's face is the one plausibly at this desk ([`StudentRule`]): at least a
//! minimum size relative to the frame (a face further back is someone else, or a poster),
//! and held for a few frames in a row (a face that flickers into one or two frames is a
//! false detection or a passer-by). Among those, the best-supported detection wins.
//!
//! With `"scan": "student"` (the default) the detector looks only for faces of that minimum
//! size, on the frame reduced as far as that size allows ([`ScanPlan::at_least`]); smaller
//! faces would be dropped by the rule anyway.

use anyhow::{Context, Result};

use crate::classify::FaceClassifier;
use crate::config::{KioskConfig, ScanMode, StudentRule};
use crate::detect::group::Group;
use crate::detect::{
    Cascade, DetectParams, Detector, FaceTracker, GreyImage, Rect, Reducer, ScanPlan, ScanWork,
};
use crate::devices::Frame;

/// The detector and the classifier, with the grey frame and the detections in buffers
/// reused frame after frame.
pub struct FaceAnalysis {
    detector: Detector,
    classifier: FaceClassifier,
    track_face_frames: u32,
    student: StudentRule,
    scan: ScanMode,
    detect: DetectParams,
    /// The plan for the last frame width seen (frames rarely change size).
    plan: Option<(usize, ScanPlan)>,
    reducer: Reducer,
    grey: Vec<u8>,
    groups: Vec<Group>,
}

/// The candidate student face across frames: where it was and for how many frames in a row.
#[derive(Debug, Default)]
pub(crate) struct StudentTrack {
    last: Option<Rect>,
    frames_in_a_row: u32,
}

/// Boxes overlapping at least this much (intersection over union) are the same face.
const SAME_FACE_IOU: f64 = 0.3;

impl StudentTrack {
    /// Follows `face` (or its absence); true once it has been held long enough.
    fn follow(&mut self, face: Option<Rect>, min_frames: u32) -> bool {
        let Some(face) = face else {
            *self = Self::default();
            return false;
        };
        let same = self
            .last
            .is_some_and(|last| last.iou(&face) >= SAME_FACE_IOU);
        self.frames_in_a_row = if same {
            self.frames_in_a_row.saturating_add(1)
        } else {
            1
        };
        self.last = Some(face);
        self.frames_in_a_row >= min_frames
    }
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
            student: config.student,
            scan: config.scan,
            detect: config.detect,
            plan: None,
            reducer: Reducer::default(),
            grey: Vec::new(),
            groups: Vec::new(),
        })
    }

    /// The detector's work so far (windows and stumps evaluated), and resets it.
    pub fn take_scan_work(&mut self) -> ScanWork {
        self.detector.take_work()
    }

    /// The scan plan for frames `width` pixels wide (kept until the width changes).
    fn plan_for(&mut self, width: usize) -> ScanPlan {
        if let Some((_, plan)) = self.plan.filter(|(planned, _)| *planned == width) {
            return plan;
        }
        let plan = match self.scan {
            ScanMode::Full => ScanPlan::full(self.detect),
            ScanMode::Student => {
                let min_face = (self.student.min_face_fraction * width as f64).ceil() as u32;
                ScanPlan::at_least(self.detect, min_face, self.detector.window_side())
            }
        };
        self.detector.set_params(plan.params);
        self.plan = Some((width, plan));
        plan
    }

    /// The student's face in `frame` and its expression, if there is one; `tracker` and
    /// `student` carry the last face from frame to frame within a lesson.
    pub(crate) fn analyse(
        &mut self,
        frame: &Frame,
        tracker: &mut FaceTracker,
        student: &mut StudentTrack,
    ) -> Result<Option<Sighting>> {
        let face = self.find_face(frame, tracker)?;
        let held = student.follow(face, self.student.min_track_frames);
        let Some(face) = face.filter(|_| held) else {
            return Ok(None);
        };
        let grey =
            GreyImage::new(frame.width(), frame.height(), &self.grey).context("grey frame")?;
        let probabilities = self.classifier.classify(grey, face)?;
        Ok(Some(Sighting {
            face,
            probabilities,
        }))
    }

    /// Detection alone: the largest-supported face of the student's size in `frame` (held
    /// or not), as the configured scan finds it; `tracker` carries it to the next frame.
    pub fn find_face(&mut self, frame: &Frame, tracker: &mut FaceTracker) -> Result<Option<Rect>> {
        let plan = self.plan_for(frame.width());
        frame.grey_into(&mut self.grey);
        let grey =
            GreyImage::new(frame.width(), frame.height(), &self.grey).context("grey frame")?;
        let scanned = self.reducer.reduce(grey, plan.factor);
        let mut groups = std::mem::take(&mut self.groups);
        tracker.detect_into(
            &mut self.detector,
            scanned,
            self.track_face_frames,
            &mut groups,
        );
        for group in groups.iter_mut() {
            *group = plan.to_frame(*group);
        }
        let min_side = self.student.min_face_fraction * frame.width() as f64;
        let face = student_face(&groups, min_side);
        self.groups = groups;
        tracker.follow(face.map(|f| plan.to_scan(f)));
        Ok(face)
    }
}

/// The student's face: among detections at least `min_side` pixels wide, the one backed by
/// the most raw hits, the larger on a tie. Picking by size alone (the paper's "largest
/// face") lets a big false positive win over a real face, as on the demo clip's astronaut
/// frames; by hits alone, a small sharp face in the background wins over the student.
fn student_face(groups: &[Group], min_side: f64) -> Option<Rect> {
    groups
        .iter()
        .filter(|g| f64::from(g.rect.width) >= min_side)
        .max_by_key(|g| (g.neighbors, g.rect.area()))
        .map(|g| g.rect)
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::{imageops, RgbImage};
    use std::time::Duration;

    fn photo(name: &str) -> RgbImage {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../tests/data/images")
            .join(name);
        image::open(path).unwrap().into_rgb8()
    }

    /// A 640×480 desk view: Grace Hopper in front (a face of about 180 px) and the
    /// astronaut small in the background (about 45 px), both found by the cascade.
    fn two_faces() -> RgbImage {
        let front = photo("grace_hopper.jpg");
        let front = imageops::resize(&front, 410, 480, imageops::FilterType::Triangle);
        let back = photo("astronaut.png");
        let back = imageops::resize(&back, 240, 240, imageops::FilterType::Triangle);
        let mut desk = RgbImage::from_pixel(640, 480, image::Rgb([90, 90, 90]));
        imageops::overlay(&mut desk, &front, 0, 0);
        imageops::overlay(&mut desk, &back, 400, 20);
        desk
    }

    fn analysis(config: &KioskConfig) -> FaceAnalysis {
        let model =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("models/lenet5-int8.onnx");
        FaceAnalysis::new(config, &model).unwrap()
    }

    #[test]
    fn the_front_face_is_the_students_and_it_must_be_held() {
        let config = KioskConfig::default();
        let mut analysis = analysis(&config);
        let frame = Frame::from_image(two_faces(), Duration::ZERO);
        // Both faces are there for the detector.
        frame.grey_into(&mut analysis.grey);
        let grey = GreyImage::new(640, 480, &analysis.grey).unwrap();
        let groups = analysis.detector.detect_groups(grey);
        let in_back = |r: &Rect| r.x >= 400 && r.width < 80;
        assert!(groups.iter().any(|g| in_back(&g.rect)), "{groups:?}");
        assert!(
            groups.iter().any(|g| g.rect.x < 400 && g.rect.width > 120),
            "{groups:?}"
        );

        let (mut tracker, mut student) = (FaceTracker::default(), StudentTrack::default());
        let mut sightings = Vec::new();
        for _ in 0..4 {
            let sighting = analysis
                .analyse(&frame, &mut tracker, &mut student)
                .unwrap();
            sightings.push(sighting.map(|s| s.face));
        }
        // Not counted until held for min_track_frames (3), then always the front face.
        assert_eq!(config.student.min_track_frames, 3);
        assert!(
            sightings[0].is_none() && sightings[1].is_none(),
            "{sightings:?}"
        );
        for face in &sightings[2..] {
            let face = face.expect("the held front face");
            assert!(face.x < 400 && face.width > 120, "{face:?}");
        }
    }

    #[test]
    fn a_face_for_a_frame_or_two_is_not_counted() {
        let mut track = StudentTrack::default();
        let face = Rect {
            x: 100,
            y: 100,
            width: 120,
            height: 120,
        };
        let moved = Rect { x: 400, ..face };
        assert!(!track.follow(Some(face), 3));
        assert!(!track.follow(Some(face), 3));
        assert!(!track.follow(None, 3), "gone after two frames");
        assert!(!track.follow(Some(face), 3));
        assert!(!track.follow(Some(moved), 3), "a jump is another face");
        assert!(!track.follow(Some(moved), 3));
        assert!(track.follow(Some(moved), 3), "held three frames");
    }
}
