//! Searching only near the last face: between full scans, the detector looks at a region
//! around where the student's face was, at sizes close to its size. A desk kiosk sees one
//! student who moves little between frames, so most frames need a fraction of the windows
//! of a full scan. A full scan still runs every `full_scan_every` frames and whenever the
//! face is not found near its last place, so a student who moves away is found again.
//! `benches/pipeline_stages.rs` measures the gain and how often the tracked face is the full
//! scan's; the kiosk tracks by default (`track_face_frames` = 10 in the config; 0 scans every
//! frame fully).

use super::group::Group;
use super::{Detector, GreyImage, Rect};

/// How far around the last face to search, as a fraction of its side.
const SEARCH_MARGIN: f32 = 0.5;
/// Face sizes searched, relative to the last face.
const SIZE_RANGE: (f32, f32) = (0.7, 1.45);

/// Remembers the last face and decides between a local search and a full scan.
#[derive(Debug, Default)]
pub struct FaceTracker {
    last: Option<Rect>,
    frames_since_full_scan: u32,
}

impl FaceTracker {
    /// Detects faces in `frame`: near the last face when allowed, else (or when that finds
    /// nothing) a full scan. `full_scan_every` = 0 always scans fully.
    /// Fills `groups` (cleared first), allocating nothing once the buffers have grown.
    pub fn detect_into(
        &mut self,
        detector: &mut Detector,
        frame: GreyImage<'_>,
        full_scan_every: u32,
        groups: &mut Vec<Group>,
    ) {
        if let Some(last) = self
            .last
            .filter(|_| self.frames_since_full_scan < full_scan_every)
        {
            self.frames_since_full_scan += 1;
            detector.detect_near_into(frame, last, groups);
            if !groups.is_empty() {
                return;
            }
        }
        self.frames_since_full_scan = 0;
        detector.detect_groups_into(frame, groups);
    }

    /// Tells the tracker which face the pipeline took (or that there was none).
    pub fn follow(&mut self, face: Option<Rect>) {
        self.last = face;
    }
}

impl Detector {
    /// Faces in the neighbourhood of `around`, at sizes near its size, in frame coordinates.
    /// Fills `groups` (cleared first).
    pub fn detect_near_into(
        &mut self,
        frame: GreyImage<'_>,
        around: Rect,
        groups: &mut Vec<Group>,
    ) {
        groups.clear();
        let side = around.width.max(around.height);
        let margin = (side as f32 * SEARCH_MARGIN).round() as i32;
        let x0 = (around.x - margin).max(0) as usize;
        let y0 = (around.y - margin).max(0) as usize;
        let x1 = ((around.x + around.width + margin) as usize).min(frame.width());
        let y1 = ((around.y + around.height + margin) as usize).min(frame.height());
        if x1 <= x0 || y1 <= y0 {
            return;
        }
        let (width, height) = (x1 - x0, y1 - y0);
        let mut region = std::mem::take(&mut self.region);
        region.clear();
        for row in frame.pixels().chunks(frame.width()).skip(y0).take(height) {
            region.extend_from_slice(&row[x0..x1]);
        }
        let full_params = *self.params();
        let local_params = super::DetectParams {
            min_size: full_params
                .min_size
                .max((side as f32 * SIZE_RANGE.0) as u32),
            max_size: Some(
                full_params
                    .max_size
                    .unwrap_or(u32::MAX)
                    .min((side as f32 * SIZE_RANGE.1) as u32),
            ),
            ..full_params
        };
        self.set_params(local_params);
        // The region is cut to exactly width × height above, so the image always exists.
        if let Ok(region) = GreyImage::new(width, height, &region) {
            self.detect_groups_into(region, groups);
        }
        self.region = region;
        self.set_params(full_params);
        for group in groups.iter_mut() {
            group.rect.x += x0 as i32;
            group.rect.y += y0 as i32;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::detect::{Cascade, DetectParams};
    use crate::imageio::read_grey;

    #[test]
    fn searching_near_the_face_finds_the_full_scans_face() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../tests/data/images/astronaut.png");
        let grey = read_grey(&path).unwrap();
        let frame = grey.image();
        let mut detector =
            Detector::new(Cascade::frontal_face().unwrap(), DetectParams::default()).unwrap();
        let full = detector.detect(frame);
        assert_eq!(full.len(), 1, "{full:?}");
        // Start from a box a little off the real face, as after some movement.
        let moved = Rect {
            x: full[0].x + 6,
            y: full[0].y - 4,
            ..full[0]
        };
        let mut near = Vec::new();
        detector.detect_near_into(frame, moved, &mut near);
        assert_eq!(near.len(), 1, "{near:?}");
        assert!(
            near[0].rect.iou(&full[0]) > 0.7,
            "{:?} vs {:?}",
            near[0].rect,
            full[0]
        );
        // The detector's own parameters are untouched by the local search.
        assert_eq!(*detector.params(), DetectParams::default());

        // The tracker falls back to a full scan when the face is not near its last place.
        let mut tracker = FaceTracker::default();
        tracker.follow(Some(Rect {
            x: 0,
            y: 0,
            width: 40,
            height: 40,
        }));
        let mut found = Vec::new();
        tracker.detect_into(&mut detector, frame, 10, &mut found);
        assert!(found.iter().any(|g| g.rect.iou(&full[0]) > 0.9));
    }
}
