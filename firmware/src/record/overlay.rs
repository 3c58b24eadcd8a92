//! Annotating a frame for the recording: the face box, the current (smoothed) expression
//! with its probability, a bar per expression for the lesson's running distribution, and the
//! impression. Text uses the embedded DejaVu Sans through ab_glyph.

use ab_glyph::{FontRef, PxScale};
use ekspresi_common::Expression;
use image::{Rgb, RgbImage};
use imageproc::drawing::{draw_filled_rect_mut, draw_hollow_rect_mut, draw_text_mut};
use imageproc::rect::Rect as DrawRect;

use crate::aggregate::Impression;
use crate::detect::Rect;

const GREEN: Rgb<u8> = Rgb([40, 200, 60]);
const RED: Rgb<u8> = Rgb([220, 50, 40]);
const WHITE: Rgb<u8> = Rgb([255, 255, 255]);
const PANEL: Rgb<u8> = Rgb([20, 20, 20]);
const BAR: Rgb<u8> = Rgb([90, 160, 230]);

/// What to draw on one frame.
pub struct Annotation {
    pub face: Option<Rect>,
    /// The displayed expression and its (smoothed) probability.
    pub expression: Option<(Expression, f32)>,
    /// Running percent per expression.
    pub percentages: [f64; 7],
    pub impression: Option<Impression>,
}

/// Draws annotations; holds the parsed font.
pub struct Overlay {
    font: FontRef<'static>,
}

impl Overlay {
    pub fn new() -> Self {
        Self {
            font: FontRef::try_from_slice(ekspresi_common::font::DEJAVU_SANS)
                .expect("the embedded DejaVu Sans is a valid TrueType font"),
        }
    }

    pub fn draw(&self, frame: &mut RgbImage, annotation: &Annotation) {
        let colour = match annotation.impression {
            Some(Impression::Good) => GREEN,
            Some(Impression::Bad) => RED,
            None => WHITE,
        };
        if let Some(face) = annotation.face {
            self.draw_face(frame, face, annotation.expression, colour);
        }
        self.draw_panel(
            frame,
            &annotation.percentages,
            annotation.impression,
            colour,
        );
    }

    fn draw_face(
        &self,
        frame: &mut RgbImage,
        face: Rect,
        expression: Option<(Expression, f32)>,
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
        if let Some((expression, probability)) = expression {
            let label = format!("{} {:.0}%", expression.name(), probability * 100.0);
            let y = (face.y - 22).max(0);
            draw_filled_rect_mut(
                frame,
                DrawRect::at(face.x, y).of_size(label.len() as u32 * 10 + 8, 20),
                PANEL,
            );
            draw_text_mut(
                frame,
                colour,
                face.x + 4,
                y + 2,
                PxScale::from(17.0),
                &self.font,
                &label,
            );
        }
    }

    fn draw_panel(
        &self,
        frame: &mut RgbImage,
        percentages: &[f64; 7],
        impression: Option<Impression>,
        colour: Rgb<u8>,
    ) {
        let (x0, y0, row) = (6, 6, 15);
        draw_filled_rect_mut(
            frame,
            DrawRect::at(x0 - 4, y0 - 4).of_size(170, row as u32 * 8 + 8),
            PANEL,
        );
        let scale = PxScale::from(12.0);
        for (i, expression) in Expression::ALL.iter().enumerate() {
            let y = y0 + i as i32 * row;
            draw_text_mut(frame, WHITE, x0, y, scale, &self.font, expression.name());
            let width = (percentages[i] * 0.8).round() as u32;
            if width > 0 {
                draw_filled_rect_mut(
                    frame,
                    DrawRect::at(x0 + 58, y + 2).of_size(width, row as u32 - 5),
                    BAR,
                );
            }
            let text = format!("{:.0}%", percentages[i]);
            draw_text_mut(frame, WHITE, x0 + 140, y, scale, &self.font, &text);
        }
        let verdict = match impression {
            Some(Impression::Good) => "impression: good",
            Some(Impression::Bad) => "impression: bad",
            None => "impression: -",
        };
        draw_text_mut(frame, colour, x0, y0 + 7 * row, scale, &self.font, verdict);
    }
}

impl Default for Overlay {
    fn default() -> Self {
        Self::new()
    }
}
