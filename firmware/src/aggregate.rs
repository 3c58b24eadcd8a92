//! Turning per-frame expressions into what the teacher sees: percentages per expression,
//! counts of positive / neutral / negative reactions, and the lesson's impression.
//!
//! **One rule, one place.** [`Tally::impression`] is the only verdict there is: the summary,
//! the LEDs and the video overlay all show it, on the lesson's counts so far, so they can
//! never contradict each other. The seed's rule: **good** when positive % + neutral % >
//! negative %, else **bad**. A tie (50 / 50) is therefore *bad*: the rule asks for a strict
//! majority of non-negative reactions, and we keep it as written rather than lean optimistic.
//!
//! **An evidence floor.** Below [`EvidenceFloor`] — too few seconds with a face, or faces in
//! too small a share of the frames — the verdict is [`Impression::Insufficient`]: a sign post
//! taken for a face in 2 % of a street clip's frames says nothing about a lesson.
//!
//! Every analysed frame counts once (raw, unsmoothed); [`Smoother`] only steadies the
//! momentary expression the overlay labels "now".

use ekspresi_common::estimate::{estimate, Correction, Estimate, SecondBlocks};
use ekspresi_common::{Category, Expression};
use serde::{Deserialize, Serialize};

/// The lesson's verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Impression {
    Good,
    Bad,
    /// Not enough face evidence for a verdict (see [`EvidenceFloor`]).
    Insufficient,
}

impl Impression {
    /// One word for screens and files.
    pub fn word(self) -> &'static str {
        match self {
            Impression::Good => "good",
            Impression::Bad => "bad",
            Impression::Insufficient => "insufficient",
        }
    }
}

/// The least face evidence a verdict needs; both conditions must hold.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EvidenceFloor {
    /// Seconds of the lesson in which a face was analysed.
    pub min_face_seconds: u64,
    /// Share of the analysed frames that had a face (0..1).
    pub min_face_share: f64,
}

impl Default for EvidenceFloor {
    /// 5 s of face: less is a glance, and one expression held that long would decide the
    /// lesson. A fifth of the frames: a student at the desk is in view most of the time, so a
    /// camera that sees a face in fewer frames is mostly seeing something else (the street
    /// clip's stray detections were 1.6 %). The demo clip (8 s; the student's face counted
    /// in 32 of 48 frames, in 6 of its seconds) clears both.
    fn default() -> Self {
        Self {
            min_face_seconds: 5,
            min_face_share: 0.2,
        }
    }
}

/// How much face the verdict rests on.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Evidence {
    /// Seconds of the lesson with at least one analysed face.
    pub face_seconds: u64,
    /// Frames with a face over frames analysed (0 when nothing was analysed).
    pub face_share: f64,
    /// The floor it was held against.
    pub floor: EvidenceFloor,
}

impl Evidence {
    pub fn is_enough(&self) -> bool {
        self.face_seconds >= self.floor.min_face_seconds
            && self.face_share >= self.floor.min_face_share
    }
}

/// What a probability of 1 counts in the per-second logs: they keep each second's summed
/// probabilities as integers in ten-thousandths, so the kiosk, `seconds.csv` and
/// `timeline.csv` hold the very same numbers and a lesson rebuilt from a log is estimated
/// exactly as it was live.
pub const PROBABILITY_UNITS: u64 = 10_000;

/// The model's seven probabilities in [`PROBABILITY_UNITS`] (each clamped to 0..=1; a
/// non-finite one counts 0).
pub fn probability_units(probabilities: &[f32; 7]) -> [u64; 7] {
    probabilities.map(|p| {
        let p = if p.is_finite() {
            p.clamp(0.0, 1.0)
        } else {
            0.0
        };
        // 0..=10_000 after the clamp: the cast cannot truncate.
        (f64::from(p) * PROBABILITY_UNITS as f64).round() as u64
    })
}

/// Whether `units`, a second's summed probabilities, are what `faces` faces can sum to: at
/// most one unit-sum a face, give or take the rounding of seven numbers (a log claiming
/// more was not written by the kiosk; overflow counts as more).
pub fn units_fit_faces(units: &[u64; 7], faces: u64) -> bool {
    let total = units.iter().try_fold(0u64, |sum, &u| sum.checked_add(u));
    let most = faces.checked_mul(PROBABILITY_UNITS + 7);
    matches!((total, most), (Some(total), Some(most)) if total <= most)
}

/// Adds one second to `blocks`: with its summed probabilities (`units`, in
/// [`PROBABILITY_UNITS`]) when it has them.
pub fn add_second(blocks: &mut SecondBlocks, counts: [u64; 3], units: Option<[u64; 7]>) {
    match units {
        Some(units) => blocks.add_second_with_probabilities(
            counts,
            units.map(|u| u as f64 / PROBABILITY_UNITS as f64),
        ),
        None => blocks.add_second(counts),
    }
}

/// Running counts over a lesson.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Tally {
    /// Frames classified, per expression in label order.
    pub per_expression: [u64; 7],
    /// Frames analysed in which no face was found.
    pub frames_without_face: u64,
    /// Seconds of the lesson with at least one face.
    pub face_seconds: u64,
    /// The last lesson second counted in `face_seconds`.
    last_face_second: Option<u64>,
    /// The finished seconds as the estimator keeps them.
    finished_seconds: SecondBlocks,
    /// The category counts of `last_face_second`, still open.
    open_second: [u64; 3],
    /// Its summed probabilities, `None` once a face of it came without them.
    open_units: Option<[u64; 7]>,
}

impl Tally {
    /// Counts one classified face, `second` into the lesson, without its probabilities (the
    /// estimate of a lesson with such a second is the adjusted count).
    pub fn record(&mut self, expression: Expression, second: u64) {
        self.record_with_probabilities(expression, second, None);
    }

    /// Counts one classified face, `second` into the lesson, with the model's probabilities
    /// for it in [`PROBABILITY_UNITS`].
    pub fn record_with_probabilities(
        &mut self,
        expression: Expression,
        second: u64,
        units: Option<[u64; 7]>,
    ) {
        self.per_expression[expression.label()] += 1;
        if self.last_face_second != Some(second) {
            self.last_face_second = Some(second);
            self.face_seconds += 1;
            add_second(
                &mut self.finished_seconds,
                std::mem::take(&mut self.open_second),
                self.open_units.replace([0; 7]),
            );
        }
        self.open_second[expression.category().index()] += 1;
        self.open_units = self
            .open_units
            .zip(units)
            .map(|(open, face)| std::array::from_fn(|k| open[k].saturating_add(face[k])));
    }

    /// The lesson's seconds so far, the open second included.
    pub fn seconds(&self) -> SecondBlocks {
        let mut blocks = self.finished_seconds.clone();
        add_second(&mut blocks, self.open_second, self.open_units);
        blocks
    }

    /// **The** lesson estimate so far ([`ekspresi_common::estimate::estimate`]), corrected
    /// by the model's `correction` when it has one; `None` before the first face.
    pub fn estimate(&self, correction: Option<&Correction>) -> Option<Estimate> {
        estimate(&self.seconds(), correction)
    }

    pub fn record_no_face(&mut self) {
        self.frames_without_face += 1;
    }

    /// Frames with a classified face.
    pub fn faces(&self) -> u64 {
        self.per_expression.iter().sum()
    }

    /// Frames analysed, with or without a face.
    pub fn frames(&self) -> u64 {
        self.faces() + self.frames_without_face
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

    /// Reactions per category (positive, neutral, negative): the one category sum.
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

    /// The face evidence so far, against `floor`.
    pub fn evidence(&self, floor: EvidenceFloor) -> Evidence {
        let frames = self.frames();
        Evidence {
            face_seconds: self.face_seconds,
            face_share: if frames == 0 {
                0.0
            } else {
                self.faces() as f64 / frames as f64
            },
            floor,
        }
    }

    /// **The** impression rule: insufficient below the evidence floor, else the seed's rule
    /// on the lesson's estimated shares so far.
    pub fn impression(&self, floor: EvidenceFloor, correction: Option<&Correction>) -> Impression {
        verdict(self.estimate(correction).as_ref(), self.evidence(floor))
    }
}

/// Seconds with a face between two refreshes of the live estimate, as a share of those so
/// far: 1 / this.
const REFRESHES_PER_LESSON: u64 = 300;

/// The lesson estimate as the LEDs and the overlay show it, refreshed when a new second
/// with a face begins rather than at every frame, and ever less often as the lesson grows: a
/// re-weighted refresh costs time in proportion to the seconds so far (4.8 ms at the end of
/// a 45-minute lesson, the `pipeline_stages` bench), so it comes once every 1/300 of them
/// (every 9 s at 45 minutes), which keeps its cost a frame flat; a verdict on minutes of
/// seconds does not move in a few.
#[derive(Debug, Clone, Default)]
pub struct LiveEstimate {
    /// `Tally::face_seconds` at the last refresh.
    refreshed_at: Option<u64>,
    estimate: Option<Estimate>,
}

impl LiveEstimate {
    /// The estimate of `tally` with `correction`, recomputed when enough seconds with a face
    /// have begun since the last refresh.
    pub fn refresh(&mut self, tally: &Tally, correction: Option<&Correction>) -> Option<Estimate> {
        let step = (tally.face_seconds / REFRESHES_PER_LESSON).max(1);
        let due = self
            .refreshed_at
            .is_none_or(|at| tally.face_seconds >= at.saturating_add(step));
        if due {
            self.estimate = tally.estimate(correction);
            self.refreshed_at = Some(tally.face_seconds);
        }
        self.estimate
    }
}

/// The rule itself, on a lesson's estimate and the evidence it rests on: what
/// [`Tally::impression`] applies during a lesson, and what the class report applies to a
/// desk whose lesson spans several sessions. Good when the estimated positive + neutral
/// shares exceed the negative one (a tie is bad).
pub fn verdict(estimate: Option<&Estimate>, evidence: Evidence) -> Impression {
    match estimate {
        Some(estimate) if evidence.is_enough() => {
            if estimate.is_good() {
                Impression::Good
            } else {
                Impression::Bad
            }
        }
        _ => Impression::Insufficient,
    }
}

/// The class's verdict by the same rule, one desk one voice: over the desks that have a
/// verdict of their own (enough evidence), the mean of their estimated shares
/// ([`Estimate::mean`]) is good when positive + neutral > negative (a tie is bad). A desk
/// the camera saw for longer weighs no more than another. Returns the verdict and the mean
/// estimate; insufficient (and none) when no desk has a verdict.
pub fn class_impression(
    desks: impl IntoIterator<Item = (Impression, Estimate)>,
) -> (Impression, Option<Estimate>) {
    let judged: Vec<Estimate> = desks
        .into_iter()
        .filter(|(impression, _)| *impression != Impression::Insufficient)
        .map(|(_, estimate)| estimate)
        .collect();
    let Some(mean) = Estimate::mean(&judged) else {
        return (Impression::Insufficient, None);
    };
    let impression = if mean.is_good() {
        Impression::Good
    } else {
        Impression::Bad
    };
    (impression, Some(mean))
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

    /// Forgets the history (the face has been gone for a while).
    pub fn reset(&mut self) {
        self.state = None;
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
    use ekspresi_common::estimate::Correction;

    /// A desk's estimate from `seconds` seconds of the given faces a second, uncorrected.
    fn counted(per_second: [u64; 3], seconds: u64) -> Estimate {
        let mut blocks = SecondBlocks::default();
        for _ in 0..seconds {
            blocks.add_second(per_second);
        }
        estimate(&blocks, None).unwrap()
    }

    #[test]
    fn summed_units_may_reach_one_unit_sum_a_face_and_no_more() {
        let most = 2 * (PROBABILITY_UNITS + 7);
        assert!(units_fit_faces(&[most, 0, 0, 0, 0, 0, 0], 2));
        assert!(!units_fit_faces(&[most - 1, 2, 0, 0, 0, 0, 0], 2));
        assert!(!units_fit_faces(&[1, 0, 0, 0, 0, 0, 0], 0));
        assert!(units_fit_faces(&[0; 7], 0));
        // Overflow, in the units' sum or in the faces' bound, is never a fit.
        assert!(!units_fit_faces(&[u64::MAX, 1, 0, 0, 0, 0, 0], u64::MAX));
        assert!(!units_fit_faces(&[1; 7], u64::MAX));
    }

    #[test]
    fn the_class_verdict_gives_each_judged_desk_one_voice() {
        // A long-watched negative desk (1,000 s) and two short positive ones: counts summed
        // would say bad, one voice each says good.
        let (verdict, mean) = class_impression([
            (Impression::Bad, counted([0, 0, 1], 1000)),
            (Impression::Good, counted([4, 0, 1], 10)),
            (Impression::Good, counted([4, 0, 1], 10)),
            (Impression::Insufficient, counted([0, 0, 5], 1)),
        ]);
        assert_eq!(verdict, Impression::Good);
        let shares = mean.unwrap().shares;
        assert!((shares[0] - 1.6 / 3.0).abs() < 1e-9, "{shares:?}");
        assert!((shares[2] - 1.4 / 3.0).abs() < 1e-9, "{shares:?}");
        // A tie is bad, as for one desk; no judged desk is insufficient.
        let tie = class_impression([(Impression::Bad, counted([1, 0, 1], 6))]);
        assert_eq!(tie.0, Impression::Bad);
        let none = class_impression([(Impression::Insufficient, counted([9, 0, 0], 2))]);
        assert_eq!(none, (Impression::Insufficient, None));
    }

    #[test]
    fn impression_follows_the_paper_and_a_tie_is_bad() {
        let enough = Evidence {
            face_seconds: 10,
            face_share: 1.0,
            floor: EvidenceFloor::default(),
        };
        let judge = |counts: [u64; 3]| verdict(Some(&counted(counts, 10)), enough);
        assert_eq!(judge([3, 2, 4]), Impression::Good);
        assert_eq!(judge([0, 0, 1]), Impression::Bad);
        assert_eq!(judge([1, 1, 2]), Impression::Bad, "tie");
        assert_eq!(verdict(None, enough), Impression::Insufficient);
    }

    #[test]
    fn the_verdict_is_judged_on_the_corrected_shares() {
        // The shipped LeNet-5's calibration: a lesson 25 % positive, 20 % neutral and 55 %
        // negative is classified under 49 % negative, a count would call it good; the
        // estimate calls it bad.
        let installed = crate::models::Installed::find().unwrap();
        let lenet = installed.named("lenet5").unwrap();
        let correction = Correction::new(lenet.calibration.as_ref().unwrap()).unwrap();
        let mut tally = Tally::default();
        // 100 faces a second for 60 s, classified as the calibration says such faces are
        // classified, on average.
        let rates = lenet.calibration.as_ref().unwrap().category_confusion;
        let truth = [0.25, 0.2, 0.55];
        let mut classified = [0.0; 3];
        for (i, row) in rates.iter().enumerate() {
            let n: u64 = row.iter().sum();
            for j in 0..3 {
                classified[j] += truth[i] * row[j] as f64 / n as f64;
            }
        }
        let per_second = classified.map(|q| (q * 100.0).round() as u64);
        let as_expression = [Expression::Happy, Expression::Neutral, Expression::Sad];
        for second in 0..60 {
            for (k, &n) in per_second.iter().enumerate() {
                for _ in 0..n {
                    tally.record(as_expression[k], second);
                }
            }
        }
        let floor = EvidenceFloor::default();
        let counts = tally.category_counts();
        assert!(
            counts.positive + counts.neutral > counts.negative,
            "{counts:?}"
        );
        assert_eq!(tally.impression(floor, None), Impression::Good);
        assert_eq!(tally.impression(floor, Some(&correction)), Impression::Bad);
        let estimate = tally.estimate(Some(&correction)).unwrap();
        assert!((estimate.shares[2] - 0.55).abs() < 0.01, "{estimate:?}");
    }

    #[test]
    fn below_the_evidence_floor_the_verdict_is_insufficient() {
        let floor = EvidenceFloor::default();
        let mut tally = Tally::default();
        assert_eq!(
            tally.impression(floor, None),
            Impression::Insufficient,
            "nothing seen"
        );
        // Happy faces for 4 seconds at 5 fps: a majority, but too short.
        for frame in 0..20 {
            tally.record(Expression::Happy, frame / 5);
        }
        assert_eq!(tally.face_seconds, 4);
        assert_eq!(tally.impression(floor, None), Impression::Insufficient);
        for frame in 20..25 {
            tally.record(Expression::Happy, frame / 5);
        }
        assert_eq!(
            tally.impression(floor, None),
            Impression::Good,
            "5 s of face"
        );
        // Long enough, but faces in only a sixth of the frames: a stray detection.
        for _ in 0..125 {
            tally.record_no_face();
        }
        let evidence = tally.evidence(floor);
        assert!((evidence.face_share - 25.0 / 150.0).abs() < 1e-12);
        assert_eq!(tally.impression(floor, None), Impression::Insufficient);
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
            tally.record(e, 0);
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
        let floor = EvidenceFloor {
            min_face_seconds: 1,
            min_face_share: 0.5,
        };
        assert_eq!(tally.impression(floor, None), Impression::Good);
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
