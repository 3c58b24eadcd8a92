//! Annotating a frame for the recording. Two kinds of number, labelled so that nobody takes
//! one for the other: on the face box the **momentary** expression ("now: happy 62%", the
//! smoothed probability); in the panel the **lesson's** estimated positive / neutral /
//! negative shares so far with their 90 % intervals ([`Tally::estimate`]) and the lesson's
//! impression — the same [`crate::aggregate::Tally::impression`] the summary and the LEDs
//! show. Text uses the embedded DejaVu Sans through ab_glyph, from a [`GlyphCache`]; the
//! lines are formatted into fixed-size strings, so a frame's overlay allocates nothing once
//! every character has been drawn once.

use std::fmt::Write;

use ab_glyph::FontRef;
use ekspresi_common::estimate::Estimate;
use ekspresi_common::{Category, Expression};
use image::{Rgb, RgbImage};
use imageproc::drawing::{draw_filled_rect_mut, draw_hollow_rect_mut};
use imageproc::rect::Rect as DrawRect;

use crate::aggregate::{Evidence, Impression};
use crate::detect::Rect;
use crate::record::glyphs::GlyphCache;

/// One overlay line: the longest, "lesson: not enough face (…/… s)", fits with room.
pub type Line = heapless::String<64>;

/// `args` formatted into a [`Line`], cut short (never failing) if it would not fit.
fn line(args: std::fmt::Arguments) -> Line {
    let mut text = Line::new();
    let _ = text.write_fmt(args);
    text
}

const GREEN: Rgb<u8> = Rgb([40, 200, 60]);
const RED: Rgb<u8> = Rgb([220, 50, 40]);
const WHITE: Rgb<u8> = Rgb([255, 255, 255]);
const PANEL: Rgb<u8> = Rgb([20, 20, 20]);
const BAR: Rgb<u8> = Rgb([90, 160, 230]);
/// The lesson panel's corner, row height and width (pixels).
const PANEL_X: i32 = 6;
const PANEL_Y: i32 = 6;
const PANEL_ROW: i32 = 15;
const PANEL_WIDTH: u32 = 250;

/// What to draw on one frame.
#[derive(Debug, Clone)]
pub struct Annotation {
    pub face: Option<Rect>,
    /// The momentary expression and its (smoothed) probability.
    pub now: Option<(Expression, f32)>,
    /// The lesson's estimated shares so far (`None` before the first face).
    pub lesson: Option<Estimate>,
    /// The lesson's impression so far, and the evidence it rests on.
    pub impression: Impression,
    pub evidence: Evidence,
}

impl Annotation {
    /// What a frame shows `now`, with the lesson's estimate so far (`None` before a face)
    /// and the evidence it rests on: the verdict is [`crate::aggregate::verdict`] on them,
    /// the rule the summary applies.
    pub fn of(
        face: Option<Rect>,
        now: Option<(Expression, f32)>,
        lesson: Option<Estimate>,
        evidence: Evidence,
    ) -> Self {
        Self {
            face,
            now,
            impression: crate::aggregate::verdict(lesson.as_ref(), evidence),
            lesson,
            evidence,
        }
    }

    /// The panel's line for `category`'s share: "42% (35–49)" (blank before any face).
    pub fn share_text(&self, category: Category) -> Line {
        match &self.lesson {
            Some(estimate) => {
                let k = category.index();
                let [low, high] = estimate.interval_90(k);
                line(format_args!(
                    "{:.0}% ({:.0}–{:.0})",
                    100.0 * estimate.shares[k],
                    100.0 * low,
                    100.0 * high
                ))
            }
            None => Line::new(),
        }
    }

    /// The panel's verdict line.
    pub fn verdict_text(&self) -> Line {
        match self.impression {
            Impression::Insufficient => line(format_args!(
                "lesson: not enough face ({}/{} s)",
                self.evidence.face_seconds, self.evidence.floor.min_face_seconds
            )),
            judged => line(format_args!("lesson: {}", judged.word())),
        }
    }

    /// The face box's label.
    pub fn now_text(&self) -> Option<Line> {
        self.now
            .map(|(e, p)| line(format_args!("now: {} {:.0}%", e.name(), p * 100.0)))
    }

    /// The colour of the verdict (and the face box): green good, red bad, white otherwise.
    pub fn colour(&self) -> Rgb<u8> {
        match self.impression {
            Impression::Good => GREEN,
            Impression::Bad => RED,
            Impression::Insufficient => WHITE,
        }
    }
}

/// Draws annotations; holds the font's rasterised glyphs.
pub struct Overlay {
    glyphs: GlyphCache,
}

impl Overlay {
    pub fn new() -> Self {
        let font = FontRef::try_from_slice(ekspresi_common::font::DEJAVU_SANS)
            .expect("the embedded DejaVu Sans is a valid TrueType font");
        Self {
            glyphs: GlyphCache::new(font),
        }
    }

    pub fn draw(&mut self, frame: &mut RgbImage, annotation: &Annotation) {
        let colour = annotation.colour();
        if let Some(face) = annotation.face {
            self.draw_face(frame, face, annotation.now_text(), colour);
        }
        self.draw_panel(frame, annotation, colour);
    }

    fn draw_face(
        &mut self,
        frame: &mut RgbImage,
        face: Rect,
        label: Option<Line>,
        colour: Rgb<u8>,
    ) {
        for inset in 0..2 {
            let w = (face.width - 2 * inset).max(1) as u32;
            let h = (face.height - 2 * inset).max(1) as u32;
            draw_hollow_rect_mut(
                frame,
                DrawRect::at(face.x + inset, face.y + inset).of_size(w, h),
                colour,
            );
        }
        if let Some(label) = label {
            let width = label.len() as u32 * 10 + 8;
            let y = label_top(face, frame.height());
            draw_filled_rect_mut(frame, DrawRect::at(face.x, y).of_size(width, 20), PANEL);
            self.glyphs
                .draw(frame, colour, face.x + 4, y + 2, 17.0, &label);
        }
    }

    fn draw_panel(&mut self, frame: &mut RgbImage, annotation: &Annotation, colour: Rgb<u8>) {
        let (x0, y0, row) = (PANEL_X, PANEL_Y, PANEL_ROW);
        draw_filled_rect_mut(
            frame,
            DrawRect::at(x0 - 4, y0 - 4).of_size(PANEL_WIDTH, row as u32 * 5 + 8),
            PANEL,
        );
        let size = 12.0;
        self.glyphs
            .draw(frame, WHITE, x0, y0, size, "lesson so far, estimated");
        for category in Category::ALL {
            let y = y0 + (category.index() as i32 + 1) * row;
            self.glyphs.draw(frame, WHITE, x0, y, size, category.name());
            let share = annotation
                .lesson
                .map_or(0.0, |e| e.shares[category.index()]);
            let width = (share * 80.0).round() as u32;
            if width > 0 {
                draw_filled_rect_mut(
                    frame,
                    DrawRect::at(x0 + 62, y + 2).of_size(width, row as u32 - 5),
                    BAR,
                );
            }
            let text = annotation.share_text(category);
            self.glyphs.draw(frame, WHITE, x0 + 148, y, size, &text);
        }
        self.glyphs.draw(
            frame,
            colour,
            x0,
            y0 + 4 * row,
            size,
            &annotation.verdict_text(),
        );
    }

    /// Where the verdict line is drawn (a test reads its colour back).
    pub fn verdict_area() -> (u32, u32, u32, u32) {
        (
            PANEL_X as u32,
            (PANEL_Y + 4 * PANEL_ROW) as u32,
            PANEL_WIDTH - 10,
            14,
        )
    }
}

/// Where the face box's label (20 px high, from the box's left edge) goes: above the box,
/// else below it — never under the lesson panel (a face high in the frame's left would hide
/// its label there) and never off the frame.
fn label_top(face: Rect, frame_height: u32) -> i32 {
    let panel_right = PANEL_X - 4 + PANEL_WIDTH as i32;
    let panel_bottom = PANEL_Y - 4 + PANEL_ROW * 5 + 8;
    let lowest = frame_height as i32 - 20;
    let clear =
        |top: i32| (0..=lowest).contains(&top) && (face.x >= panel_right || top >= panel_bottom);
    let (above, below) = (face.y - 22, face.y + face.height + 2);
    if clear(above) {
        above
    } else if clear(below) {
        below
    } else {
        below.max(panel_bottom).min(lowest).max(0)
    }
}

impl Default for Overlay {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Counts of the lesson's faces (one per second, so the time floor is met) and no-face
    /// frames.
    use crate::aggregate::{EvidenceFloor, Tally};

    fn tally(expressions: &[(Expression, u64)], without_face: u64) -> Tally {
        let mut tally = Tally::default();
        let mut second = 0;
        for &(expression, n) in expressions {
            for _ in 0..n {
                tally.record(expression, second);
                second += 1;
            }
        }
        for _ in 0..without_face {
            tally.record_no_face();
        }
        tally
    }

    /// How many pixels of the verdict line are close to `colour`.
    fn pixels_near(image: &RgbImage, colour: Rgb<u8>) -> usize {
        let (x, y, w, h) = Overlay::verdict_area();
        let close = |p: &Rgb<u8>| (0..3).all(|c| p[c].abs_diff(colour[c]) < 40);
        (y..y + h)
            .flat_map(|y| (x..x + w).map(move |x| (x, y)))
            .filter(|&(x, y)| close(image.get_pixel(x, y)))
            .count()
    }

    #[test]
    fn the_face_label_never_hides_under_the_panel_or_leaves_the_frame() {
        let face = |x, y| Rect {
            x,
            y,
            width: 100,
            height: 100,
        };
        // Clear of the panel: above the box.
        assert_eq!(label_top(face(300, 200), 480), 178);
        // High in the frame's left (the demo's face): below the box, not under the panel.
        assert_eq!(label_top(face(230, 57), 480), 159);
        // At the top right: above would leave the frame, so below.
        assert_eq!(label_top(face(400, 10), 480), 112);
        // A box filling the frame: the label stays inside it.
        let whole = Rect {
            x: 0,
            y: 0,
            width: 640,
            height: 480,
        };
        assert_eq!(label_top(whole, 480), 460);
    }

    #[test]
    fn the_drawn_verdict_is_the_summary_rule_on_the_same_counts() {
        use Expression::*;
        let floor = EvidenceFloor::default();
        let mut overlay = Overlay::new();
        let cases = [
            // The momentary expression says angry while the lesson is mostly happy: the
            // verdict follows the lesson, the "now" label the moment.
            (tally(&[(Happy, 8), (Angry, 3)], 2), Impression::Good, GREEN),
            (
                tally(&[(Happy, 4), (Sad, 3), (Fear, 3)], 0),
                Impression::Bad,
                RED,
            ),
            (tally(&[(Happy, 2)], 0), Impression::Insufficient, WHITE),
            (tally(&[(Happy, 6)], 100), Impression::Insufficient, WHITE),
        ];
        for (tally, expected, colour) in cases {
            let now = Some((Angry, 0.9));
            let annotation = Annotation::of(None, now, tally.estimate(None), tally.evidence(floor));
            assert_eq!(annotation.impression, tally.impression(floor, None));
            assert_eq!(annotation.impression, expected);
            let mut image = RgbImage::new(320, 240);
            overlay.draw(&mut image, &annotation);
            let others = [GREEN, RED, WHITE].into_iter().filter(|&c| c != colour);
            assert!(
                pixels_near(&image, colour) > 20,
                "{expected:?} drawn in its colour"
            );
            for other in others {
                assert_eq!(
                    pixels_near(&image, other),
                    0,
                    "{expected:?}: no other verdict colour"
                );
            }
            let text = annotation.verdict_text();
            match expected {
                Impression::Insufficient => assert!(text.contains("not enough face"), "{text}"),
                judged => assert_eq!(text.as_str(), format!("lesson: {}", judged.word())),
            }
            assert_eq!(annotation.now_text().as_deref(), Some("now: angry 90%"));
        }
    }
}
