//! Turning per-frame expressions into what the teacher sees: percentages per expression,
//! counts of positive / neutral / negative reactions, and the lesson's impression.
//!
//! The paper's rule: impression is **good** when positive % + neutral % > negative %, else
//! **bad**. A tie (50 / 50) is therefore *bad*: the rule asks for a strict majority of
//! non-negative reactions, and we keep it as written rather than lean optimistic. A lesson
//! with no analysed face has no impression at all.
//!
//! Every analysed frame counts once (raw, unsmoothed); [`Smoother`] only steadies what the
//! LEDs and the video overlay show.

use ekspresi_common::{Category, Expression};
use serde::{Deserialize, Serialize};

/// The lesson's verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Impression {
    Good,
    Bad,
}

/// Running counts over a lesson.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Tally {
    /// Frames classified, per expression in label order.
    pub per_expression: [u64; 7],
    /// Frames analysed in which no face was found.
    pub frames_without_face: u64,
}

impl Tally {
    pub fn record(&mut self, expression: Expression) {
        self.per_expression[expression.label()] += 1;
    }

    pub fn record_no_face(&mut self) {
        self.frames_without_face += 1;
    }

    /// Frames with a classified face.
    pub fn faces(&self) -> u64 {
        self.per_expression.iter().sum()
    }

    /// Percent of classified frames per expression (all zero when there are none).
    pub fn percentages(&self) -> [f64; 7] {
        let total = self.faces();
        let mut out = [0.0; 7];
        if total > 0 {
            for (p, &n) in out.iter_mut().zip(&self.per_expression) {
                *p = 100.0 * n as f64 / total as f64;
            }
        }
        out
    }

    /// Reactions per category (positive, neutral, negative).
    pub fn category_counts(&self) -> CategoryCounts {
        let mut counts = CategoryCounts::default();
        for expression in Expression::ALL {
            let n = self.per_expression[expression.label()];
            match expression.category() {
                Category::Positive => counts.positive += n,
                Category::Neutral => counts.neutral += n,
                Category::Negative => counts.negative += n,
            }
        }
        counts
    }

    pub fn impression(&self) -> Option<Impression> {
        self.category_counts().impression()
    }
}

/// Counts of reactions per category.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CategoryCounts {
    pub positive: u64,
    pub neutral: u64,
    pub negative: u64,
}

impl CategoryCounts {
    pub fn total(&self) -> u64 {
        self.positive + self.neutral + self.negative
    }

    /// (positive, neutral, negative) in percent of the total.
    pub fn percentages(&self) -> (f64, f64, f64) {
        let total = self.total().max(1) as f64;
        (
            100.0 * self.positive as f64 / total,
            100.0 * self.neutral as f64 / total,
            100.0 * self.negative as f64 / total,
        )
    }

    /// Good when positive + neutral outnumber negative; a tie is bad; nothing seen is none.
    pub fn impression(&self) -> Option<Impression> {
        if self.total() == 0 {
            return None;
        }
        // Comparing counts is comparing percentages of the same total, without rounding.
        Some(if self.positive + self.neutral > self.negative {
            Impression::Good
        } else {
            Impression::Bad
        })
    }
}

/// Exponential moving average of class probabilities, for a steady display.
#[derive(Debug, Clone)]
pub struct Smoother {
    alpha: f32,
    state: Option<[f32; 7]>,
}

impl Smoother {
    /// `alpha` is the weight of the newest frame (1 disables smoothing).
    pub fn new(alpha: f32) -> Self {
        Self {
            alpha: alpha.clamp(0.01, 1.0),
            state: None,
        }
    }

    /// Folds in one frame's probabilities and returns the smoothed expression.
    pub fn update(&mut self, probabilities: &[f32; 7]) -> Expression {
        let next = match self.state {
            None => *probabilities,
            Some(previous) => {
                let mut blended = [0.0; 7];
                for (b, (p, q)) in blended.iter_mut().zip(previous.iter().zip(probabilities)) {
                    *b = (1.0 - self.alpha) * p + self.alpha * q;
                }
                blended
            }
        };
        self.state = Some(next);
        top_expression(&next)
    }

    pub fn current(&self) -> Option<[f32; 7]> {
        self.state
    }
}

/// The most probable expression (the first on ties).
pub fn top_expression(probabilities: &[f32; 7]) -> Expression {
    Expression::most_probable(probabilities)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn impression_follows_the_paper_and_a_tie_is_bad() {
        let counts = |positive, neutral, negative| CategoryCounts {
            positive,
            neutral,
            negative,
        };
        assert_eq!(counts(3, 2, 4).impression(), Some(Impression::Good));
        assert_eq!(counts(0, 0, 1).impression(), Some(Impression::Bad));
        assert_eq!(counts(1, 1, 2).impression(), Some(Impression::Bad), "tie");
        assert_eq!(counts(0, 0, 0).impression(), None);
    }

    #[test]
    fn tally_groups_and_percentages_sum_to_100() {
        let mut tally = Tally::default();
        for e in [
            Expression::Happy,
            Expression::Happy,
            Expression::Sad,
            Expression::Neutral,
            Expression::Surprise,
            Expression::Fear,
        ] {
            tally.record(e);
        }
        tally.record_no_face();
        assert_eq!(tally.faces(), 6);
        assert_eq!(tally.frames_without_face, 1);
        assert_eq!(
            tally.category_counts(),
            CategoryCounts {
                positive: 3,
                neutral: 1,
                negative: 2
            }
        );
        let sum: f64 = tally.percentages().iter().sum();
        assert!((sum - 100.0).abs() < 1e-9);
        assert_eq!(tally.impression(), Some(Impression::Good));
    }

    #[test]
    fn smoothing_resists_a_single_flicker() {
        let mut smoother = Smoother::new(0.3);
        let happy = [0.0, 0.0, 0.0, 0.9, 0.0, 0.0, 0.1];
        let sad = [0.0, 0.0, 0.0, 0.1, 0.9, 0.0, 0.0];
        for _ in 0..5 {
            assert_eq!(smoother.update(&happy), Expression::Happy);
        }
        assert_eq!(
            smoother.update(&sad),
            Expression::Happy,
            "one odd frame does not flip it"
        );
        for _ in 0..5 {
            smoother.update(&sad);
        }
        assert_eq!(smoother.update(&sad), Expression::Sad);
    }
}
