//! The lesson estimate: a lesson's positive / neutral / negative shares corrected for the
//! model's known confusions, each with a 90 % interval — the one estimator every screen,
//! file and report shows (the kiosk's LEDs and overlay, `summary.json`, the class report and
//! the trainer's lesson benchmark all call [`estimate`]).
//!
//! **Why correct.** Counting each face's top class pulls every lesson towards the middle: a
//! model that sends a fifth of neutral faces to negative and a fifth of negative faces to
//! neutral reports a 70 % negative lesson as about 56 %. What the kiosk observes is the
//! share `q` of faces it *classified* into each category; on faces of a lesson whose true
//! shares are `p`, `E[q] = Cᵀ p`, where `C[i][j]` is the rate at which the model puts a face
//! of true category `i` into category `j`. [`Calibration`] holds `C` counted on faces the
//! model never trained on; [`estimate`] solves `Cᵀ p = q` for `p` on the simplex (least
//! squares when the exact solution has a negative share): adjusted classify-and-count
//! (Forman 2008), the method that brought the share error from 6.5–7 to about 2 points on
//! simulated lessons (issue 27; our benchmark is `model-quant lessons`).
//!
//! **Why this interval.** Frames within a second show the same face and are alike, so
//! seconds, not frames, are the independent units: `q` is a ratio of per-second sums, and its
//! variance is the ratio estimator's over per-second blocks. [`SecondBlocks`] keeps the sums
//! of that formula (counts, products, squares), so a refresh costs the same at minute 1 and
//! minute 45, and a lesson rebuilt from `seconds.csv` after a power cut has the very same
//! sums. The correction's own uncertainty (each row of `C` is a proportion over a finite
//! number of faces) is added by the delta method; the 90 % interval is the normal one on the
//! sum, clipped to 0..100 %.
//!
//! **Better still, when the seconds carry probabilities.** A calibration that also holds
//! the model's probability scaling ([`ProbabilityCalibration`], `scaling`) and a lesson whose
//! every second logged the model's summed probabilities are estimated by re-weighting those
//! calibrated probabilities to the lesson's mix (`em`, [`Method::CalibratedEm`]), with an
//! interval from linearising that estimate over seconds and the calibration's resampled fits
//! (`influence`); the adjusted count stays the fallback for lessons logged without
//! probabilities.

use serde::{Deserialize, Serialize};

mod em;
mod influence;
mod scaling;

pub use em::SecondProbabilities;
pub use scaling::{LabelledFace, ProbabilityCalibration, ScalingError, ScalingFit, RESAMPLED_FITS};

/// z of a two-sided 90 % normal interval.
const Z90: f64 = 1.644_853_626_951_472_2;

/// Fewest faces of each true category a calibration must have counted.
pub const MIN_FACES_PER_CATEGORY: u64 = 30;
/// Most faces a calibration may claim in all (FER-2013 has 35,887).
pub const MAX_CALIBRATION_FACES: u64 = 10_000_000;
/// Smallest determinant of `C` accepted: below it the correction would amplify noise without
/// bound (a model no better than chance on some category cannot be corrected).
const MIN_DETERMINANT: f64 = 0.02;

/// How a model's top class falls on each true category, counted on faces it was not trained
/// on. Stored beside the model in `models.json` and copied into each lesson's summary, so a
/// lesson can be re-estimated anywhere from its own files.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Calibration {
    /// The training run whose validation split (carved from FER-2013 `Training`, never
    /// trained on) the confusions were counted on.
    pub validation_of: String,
    /// Rows: true positive, neutral, negative; columns: the category the model gave.
    pub category_confusion: [[u64; 3]; 3],
    /// The model's seven probabilities calibrated on the same faces, for the estimate by
    /// re-weighting ([`Method::CalibratedEm`]); absent in calibrations before it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub probabilities: Option<ProbabilityCalibration>,
}

impl Calibration {
    /// The same calibration without its probability scaling: what corrects counts alone
    /// (the live class view's windows carry counts, and the scaling's fits are some kB).
    pub fn counting_only(self) -> Calibration {
        Calibration {
            probabilities: None,
            ..self
        }
    }
}

/// Why a calibration cannot correct anything.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum CalibrationError {
    #[error("the calibration counted {faces} faces of true category {category}; at least {MIN_FACES_PER_CATEGORY} are needed")]
    TooFewFaces { category: usize, faces: u64 },
    #[error("the calibration claims more than {MAX_CALIBRATION_FACES} faces")]
    TooManyFaces,
    #[error(
        "the calibration's confusions cannot be undone (determinant {0:.4} < {MIN_DETERMINANT})"
    )]
    Singular(f64),
    #[error("the calibration's probability scaling is unusable: {0}")]
    Scaling(#[from] ScalingError),
}

/// A checked [`Calibration`], ready to correct: the rates `C`, the inverse of `Cᵀ` and how
/// many faces each row was counted on.
#[derive(Debug, Clone, PartialEq)]
pub struct Correction {
    rates: [[f64; 3]; 3],
    inverse: [[f64; 3]; 3],
    row_faces: [f64; 3],
    probabilities: Option<ProbabilityCalibration>,
}

impl Correction {
    pub fn new(calibration: &Calibration) -> Result<Self, CalibrationError> {
        let mut rates = [[0.0; 3]; 3];
        let mut row_faces = [0.0; 3];
        let mut total: u64 = 0;
        for (category, row) in calibration.category_confusion.iter().enumerate() {
            let faces = row
                .iter()
                .try_fold(0u64, |sum, &n| sum.checked_add(n))
                .filter(|&n| n <= MAX_CALIBRATION_FACES)
                .ok_or(CalibrationError::TooManyFaces)?;
            if faces < MIN_FACES_PER_CATEGORY {
                return Err(CalibrationError::TooFewFaces { category, faces });
            }
            total = total.saturating_add(faces);
            row_faces[category] = faces as f64;
            for (rate, &n) in rates[category].iter_mut().zip(row) {
                *rate = n as f64 / faces as f64;
            }
        }
        if total > MAX_CALIBRATION_FACES {
            return Err(CalibrationError::TooManyFaces);
        }
        let observed = transpose(&rates);
        let determinant = det(&observed);
        // NaN fails too (a calibration of huge counts cannot produce one, but checked anyway).
        if determinant.abs().partial_cmp(&MIN_DETERMINANT) != Some(std::cmp::Ordering::Greater) {
            return Err(CalibrationError::Singular(determinant));
        }
        if let Some(probabilities) = &calibration.probabilities {
            probabilities.check()?;
        }
        Ok(Self {
            rates,
            inverse: inverse(&observed, determinant),
            row_faces,
            probabilities: calibration.probabilities.clone(),
        })
    }

    /// The same correction by the adjusted count only (the lesson benchmark's comparison).
    pub fn counting_only(&self) -> Correction {
        Correction {
            probabilities: None,
            ..self.clone()
        }
    }

    /// The true shares that best explain the classified shares `q`: `(Cᵀ)⁻¹ q` when that
    /// is a mix, else the least-squares mix on the simplex's boundary.
    fn solve(&self, q: [f64; 3]) -> [f64; 3] {
        let interior = mat_vec(&self.inverse, q);
        if interior.iter().all(|&p| p >= 0.0) {
            return interior;
        }
        let observed = transpose(&self.rates);
        let mut best = ([0.0; 3], f64::INFINITY);
        for (i, j) in [(0, 1), (0, 2), (1, 2)] {
            let candidate = best_on_edge(&observed, q, i, j);
            let residual = squared_norm(sub(mat_vec(&observed, candidate), q));
            if residual < best.1 {
                best = (candidate, residual);
            }
        }
        best.0
    }

    /// Covariance the calibration's own finite counts add to the corrected shares `p`
    /// (delta method: `dp = −(Cᵀ)⁻¹ dCᵀ p`, each row of `C` a multinomial proportion).
    fn calibration_covariance(&self, p: [f64; 3]) -> [[f64; 3]; 3] {
        let mut of_observed = [[0.0; 3]; 3];
        for (i, row) in self.rates.iter().enumerate() {
            let weight = p[i] * p[i] / self.row_faces[i];
            for (a, &ra) in row.iter().enumerate() {
                for (b, &rb) in row.iter().enumerate() {
                    let multinomial = if a == b { ra - ra * rb } else { -ra * rb };
                    of_observed[a][b] += weight * multinomial;
                }
            }
        }
        sandwich(&self.inverse, &of_observed)
    }
}

/// What a refresh needs of a lesson's seconds: the sums of the ratio estimator's variance
/// over per-second category counts (the adjusted count's), and each second's summed
/// probabilities when the kiosk logged them (the re-weighting's). Seconds without a face add
/// nothing.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SecondBlocks {
    seconds: u64,
    faces: f64,
    counts: [f64; 3],
    faces_squared: f64,
    faces_times_counts: [f64; 3],
    products: [[f64; 3]; 3],
    probabilities: Vec<SecondProbabilities>,
    /// Seconds with faces but no probabilities (logged before they were): the re-weighting
    /// then cannot see the whole lesson.
    seconds_without_probabilities: u64,
}

impl SecondBlocks {
    /// Adds one second's faces per category (positive, neutral, negative).
    pub fn add_second(&mut self, counts: [u64; 3]) {
        if self.add_counts(counts) {
            self.seconds_without_probabilities += 1;
        }
    }

    /// Adds one second's faces per category and the model's seven probabilities summed over
    /// the same faces.
    pub fn add_second_with_probabilities(&mut self, counts: [u64; 3], summed: [f64; 7]) {
        if self.add_counts(counts) {
            self.probabilities.push(SecondProbabilities {
                faces: counts.iter().sum(),
                summed,
            });
        }
    }

    /// Adds the counts; false for a second without faces.
    fn add_counts(&mut self, counts: [u64; 3]) -> bool {
        let c = counts.map(|n| n as f64);
        let f: f64 = c.iter().sum();
        if f == 0.0 {
            return false;
        }
        self.seconds += 1;
        self.faces += f;
        self.faces_squared += f * f;
        for a in 0..3 {
            self.counts[a] += c[a];
            self.faces_times_counts[a] += f * c[a];
            for b in 0..3 {
                self.products[a][b] += c[a] * c[b];
            }
        }
        true
    }

    /// Both lessons' seconds together.
    pub fn merged(mut self, other: &SecondBlocks) -> SecondBlocks {
        self.seconds += other.seconds;
        self.faces += other.faces;
        self.faces_squared += other.faces_squared;
        for a in 0..3 {
            self.counts[a] += other.counts[a];
            self.faces_times_counts[a] += other.faces_times_counts[a];
            for b in 0..3 {
                self.products[a][b] += other.products[a][b];
            }
        }
        self.probabilities.extend_from_slice(&other.probabilities);
        self.seconds_without_probabilities += other.seconds_without_probabilities;
        self
    }

    /// The seconds' probabilities, when every second with a face has them.
    fn all_probabilities(&self) -> Option<&[SecondProbabilities]> {
        (self.seconds_without_probabilities == 0 && !self.probabilities.is_empty())
            .then_some(self.probabilities.as_slice())
    }

    /// Seconds with at least one face.
    pub fn seconds(&self) -> u64 {
        self.seconds
    }

    /// Faces counted (positive, neutral, negative).
    pub fn counts(&self) -> [f64; 3] {
        self.counts
    }

    /// The classified shares and their covariance (`None` from fewer than 2 seconds).
    fn classified(&self) -> ([f64; 3], Option<[[f64; 3]; 3]>) {
        let q = self.counts.map(|c| c / self.faces);
        if self.seconds < 2 {
            return (q, None);
        }
        // Σ_s (c_s − q f_s)(c_s − q f_s)ᵀ, expanded into the kept sums.
        let mut spread = [[0.0; 3]; 3];
        for a in 0..3 {
            for b in 0..3 {
                spread[a][b] = self.products[a][b]
                    - q[a] * self.faces_times_counts[b]
                    - q[b] * self.faces_times_counts[a]
                    + q[a] * q[b] * self.faces_squared;
            }
        }
        let n = self.seconds as f64;
        let scale = n / (n - 1.0) / (self.faces * self.faces);
        (q, Some(spread.map(|row| row.map(|v| v * scale))))
    }
}

/// How the shares were obtained.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Method {
    /// Classified shares corrected for the model's calibrated confusions.
    AdjustedCount,
    /// The model's classified shares as they are: no calibration for this model.
    ClassifiedCount,
    /// Each second's calibrated probabilities re-weighted to the lesson's mix (EM).
    CalibratedEm,
}

impl Method {
    /// How far the method corrects: the mean of several lessons names the least.
    fn rank(self) -> u8 {
        match self {
            Method::ClassifiedCount => 0,
            Method::AdjustedCount => 1,
            Method::CalibratedEm => 2,
        }
    }

    /// One phrase for screens and files.
    pub fn words(self) -> &'static str {
        match self {
            Method::AdjustedCount => "corrected for the model's known confusions",
            Method::CalibratedEm => {
                "corrected for the model's known confusions (its calibrated probabilities \
                 re-weighted to the lesson's mix)"
            }
            Method::ClassifiedCount => {
                "as the model classified them (no calibration for this model, so not corrected)"
            }
        }
    }
}

/// A lesson's estimated shares (fractions, positive / neutral / negative) and their
/// standard errors.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Estimate {
    pub shares: [f64; 3],
    /// Standard error of each share (1 when unknown: fewer than 2 seconds with a face).
    pub standard_errors: [f64; 3],
    pub method: Method,
}

impl Estimate {
    /// The 90 % interval of share `category` (0..1).
    pub fn interval_90(&self, category: usize) -> [f64; 2] {
        let (share, error) = (self.shares[category], self.standard_errors[category]);
        [
            (share - Z90 * error).clamp(0.0, 1.0),
            (share + Z90 * error).clamp(0.0, 1.0),
        ]
    }

    /// positive + neutral − negative (−1..1): the seed's rule says good when it is above 0.
    pub fn margin(&self) -> f64 {
        self.shares[0] + self.shares[1] - self.shares[2]
    }

    /// The margin's 90 % interval (the margin is 1 − 2 × negative, the shares summing to 1).
    pub fn margin_interval_90(&self) -> [f64; 2] {
        let half = 2.0 * Z90 * self.standard_errors[2];
        let margin = self.margin();
        [(margin - half).max(-1.0), (margin + half).min(1.0)]
    }

    /// The seed's rule on the estimate: positive + neutral > negative (a tie is not).
    pub fn is_good(&self) -> bool {
        self.margin() > 0.0
    }

    /// True when the verdict could go either way within the model's error: the margin's
    /// 90 % interval contains 0.
    pub fn verdict_within_error(&self) -> bool {
        let [low, high] = self.margin_interval_90();
        low <= 0.0 && 0.0 <= high
    }

    /// The mean of several lessons' estimates, each one voice (a class of desks); their
    /// errors independent. `None` for none.
    pub fn mean(estimates: &[Estimate]) -> Option<Estimate> {
        let n = estimates.len() as f64;
        let first = estimates.first()?;
        let mut shares = [0.0; 3];
        let mut variances = [0.0; 3];
        for estimate in estimates {
            for k in 0..3 {
                shares[k] += estimate.shares[k] / n;
                variances[k] += estimate.standard_errors[k].powi(2) / (n * n);
            }
        }
        // The class is only as corrected as its least corrected desk.
        let method = estimates
            .iter()
            .map(|e| e.method)
            .min_by_key(|m| m.rank())
            .unwrap_or(first.method);
        Some(Estimate {
            shares,
            standard_errors: variances.map(f64::sqrt),
            method,
        })
    }
}

/// **The** lesson estimate from its seconds: by re-weighting the calibrated probabilities
/// when the model's calibration has them and every second logged them, else by correcting
/// the counts when the model has a calibration, else the classified shares; `None` when no
/// face was counted.
pub fn estimate(blocks: &SecondBlocks, correction: Option<&Correction>) -> Option<Estimate> {
    if blocks.faces <= 0.0 {
        return None;
    }
    let reweighting = correction
        .and_then(|c| c.probabilities.as_ref())
        .zip(blocks.all_probabilities());
    let (shares, errors, method) = match (reweighting, correction) {
        (Some((calibration, seconds)), _) => {
            let (shares, errors) = em::shares(seconds, calibration);
            return Some(reweighted(shares, errors));
        }
        (None, None) => {
            let (q, sampling) = blocks.classified();
            (
                q,
                sampling.map(|c| diagonal_roots(&c)),
                Method::ClassifiedCount,
            )
        }
        (None, Some(correction)) => {
            let (q, sampling) = blocks.classified();
            let p = correction.solve(q);
            let covariance = sampling.map(|of_q| {
                add(
                    &sandwich(&correction.inverse, &of_q),
                    &correction.calibration_covariance(p),
                )
            });
            (
                p,
                covariance.map(|c| diagonal_roots(&c)),
                Method::AdjustedCount,
            )
        }
    };
    Some(finished(shares, errors, method))
}

/// The estimates of a lesson cut into parts (a desk's minutes; `None` where a part has no
/// seconds) and of the whole lesson they make, each what [`estimate`] gives it; when they
/// are re-weighted each second is calibrated once, for its part and the whole alike (the
/// class report estimates every desk and every desk-minute, and calibrating is a third of
/// an estimate's time).
pub fn estimate_with_parts(
    parts: &[Option<SecondBlocks>],
    correction: Option<&Correction>,
) -> (Option<Estimate>, Vec<Option<Estimate>>) {
    let whole = parts
        .iter()
        .flatten()
        .fold(SecondBlocks::default(), SecondBlocks::merged);
    let calibration = correction.and_then(|c| c.probabilities.as_ref());
    let (Some(calibration), Some(_)) = (calibration, whole.all_probabilities()) else {
        let each = parts
            .iter()
            .map(|part| part.as_ref().and_then(|p| estimate(p, correction)))
            .collect();
        return (estimate(&whole, correction), each);
    };
    // Every second of the whole has probabilities, so every second of each part.
    let calibrated: Vec<Option<em::CalibratedSeconds>> = parts
        .iter()
        .map(|part| {
            let seconds = part.as_ref()?.all_probabilities()?;
            Some(em::CalibratedSeconds::new(seconds, &calibration.fit))
        })
        .collect();
    let each = calibrated
        .iter()
        .map(|part| {
            let (shares, errors) = em::calibrated_shares(part.as_ref()?, calibration);
            Some(reweighted(shares, errors))
        })
        .collect();
    let lesson = em::CalibratedSeconds::concatenated(calibrated.iter().flatten());
    let (shares, errors) = em::calibrated_shares(&lesson, calibration);
    (Some(reweighted(shares, errors)), each)
}

fn reweighted(shares: [f64; 3], errors: Option<[f64; 3]>) -> Estimate {
    finished(shares, errors, Method::CalibratedEm)
}

/// An estimate of shares clamped to 0..1 and their errors (1 when unknown).
fn finished(shares: [f64; 3], errors: Option<[f64; 3]>, method: Method) -> Estimate {
    Estimate {
        shares: shares.map(|s| s.clamp(0.0, 1.0)),
        standard_errors: errors.unwrap_or([1.0; 3]),
        method,
    }
}

/// The standard errors of a covariance's diagonal.
fn diagonal_roots(covariance: &Matrix) -> [f64; 3] {
    [0, 1, 2].map(|k| covariance[k][k].max(0.0).sqrt())
}

type Matrix = [[f64; 3]; 3];

fn transpose(m: &Matrix) -> Matrix {
    let mut t = [[0.0; 3]; 3];
    for (i, row) in m.iter().enumerate() {
        for (j, &v) in row.iter().enumerate() {
            t[j][i] = v;
        }
    }
    t
}

fn det(m: &Matrix) -> f64 {
    m[0][0] * (m[1][1] * m[2][2] - m[1][2] * m[2][1])
        - m[0][1] * (m[1][0] * m[2][2] - m[1][2] * m[2][0])
        + m[0][2] * (m[1][0] * m[2][1] - m[1][1] * m[2][0])
}

/// The inverse by cofactors, `determinant` being `det(m)` (checked non-zero).
fn inverse(m: &Matrix, determinant: f64) -> Matrix {
    let mut out = [[0.0; 3]; 3];
    for (i, row) in out.iter_mut().enumerate() {
        for (j, v) in row.iter_mut().enumerate() {
            // Cofactor of m[j][i] (the adjugate is the cofactors transposed).
            let (r0, r1) = others(j);
            let (c0, c1) = others(i);
            let minor = m[r0][c0] * m[r1][c1] - m[r0][c1] * m[r1][c0];
            let sign = if (i + j) % 2 == 0 { 1.0 } else { -1.0 };
            *v = sign * minor / determinant;
        }
    }
    out
}

/// The two indices of 0..3 other than `i`, in order.
fn others(i: usize) -> (usize, usize) {
    match i {
        0 => (1, 2),
        1 => (0, 2),
        _ => (0, 1),
    }
}

fn mat_vec(m: &Matrix, v: [f64; 3]) -> [f64; 3] {
    m.map(|row| row[0] * v[0] + row[1] * v[1] + row[2] * v[2])
}

/// `m · s · mᵀ`.
fn sandwich(m: &Matrix, s: &Matrix) -> Matrix {
    let mut out = [[0.0; 3]; 3];
    for (a, row) in out.iter_mut().enumerate() {
        for (b, v) in row.iter_mut().enumerate() {
            for i in 0..3 {
                for j in 0..3 {
                    *v += m[a][i] * s[i][j] * m[b][j];
                }
            }
        }
    }
    out
}

fn add(a: &Matrix, b: &Matrix) -> Matrix {
    let mut out = *a;
    for (row, other) in out.iter_mut().zip(b) {
        for (v, w) in row.iter_mut().zip(other) {
            *v += w;
        }
    }
    out
}

fn sub(a: [f64; 3], b: [f64; 3]) -> [f64; 3] {
    [a[0] - b[0], a[1] - b[1], a[2] - b[2]]
}

fn squared_norm(v: [f64; 3]) -> f64 {
    v.iter().map(|x| x * x).sum()
}

/// The mix `t e_i + (1 − t) e_j` (t in 0..1) whose expected classified shares are nearest
/// `q`.
fn best_on_edge(observed: &Matrix, q: [f64; 3], i: usize, j: usize) -> [f64; 3] {
    let column = |k: usize| [observed[0][k], observed[1][k], observed[2][k]];
    let start = sub(column(j), q);
    let direction = sub(column(i), column(j));
    let length = squared_norm(direction);
    let t = if length > 0.0 {
        (-(start[0] * direction[0] + start[1] * direction[1] + start[2] * direction[2]) / length)
            .clamp(0.0, 1.0)
    } else {
        0.0
    };
    let mut p = [0.0; 3];
    p[i] = t;
    p[j] = 1.0 - t;
    p
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The shipped LeNet-5's confusions, roughly (issue 27): a fifth of neutral faces called
    /// negative, a fifth of negative faces neutral and a tenth positive.
    fn lenet_like() -> Calibration {
        Calibration {
            validation_of: "test".into(),
            category_confusion: [[800, 100, 100], [50, 750, 200], [100, 200, 700]],
            probabilities: None,
        }
    }

    fn blocks_of(seconds: &[[u64; 3]]) -> SecondBlocks {
        let mut blocks = SecondBlocks::default();
        for &s in seconds {
            blocks.add_second(s);
        }
        blocks
    }

    #[test]
    fn the_exact_expected_counts_of_a_mix_give_back_the_mix() {
        let correction = Correction::new(&lenet_like()).unwrap();
        // A lesson 70 % negative, counted with exactly the expected rates.
        let truth = [0.1, 0.2, 0.7];
        let q = mat_vec(&transpose(&correction.rates), truth);
        let counted = q.map(|s| (s * 10_000.0).round() as u64);
        let blocks = blocks_of(&[counted, counted]);
        let estimate = estimate(&blocks, Some(&correction)).unwrap();
        for (share, true_share) in estimate.shares.iter().zip(truth) {
            assert!((share - true_share).abs() < 1e-3, "{estimate:?}");
        }
        // The count itself is pulled to the middle: 54 % negative.
        assert!((q[2] - 0.54).abs() < 1e-9, "{q:?}");
        assert_eq!(estimate.method, Method::AdjustedCount);
        assert!(!estimate.is_good());
    }

    #[test]
    fn shares_off_the_simplex_are_projected_onto_it() {
        let correction = Correction::new(&lenet_like()).unwrap();
        // All faces classified positive: more positive than any mix can explain.
        let estimate = estimate(&blocks_of(&[[5, 0, 0], [5, 0, 0]]), Some(&correction)).unwrap();
        let sum: f64 = estimate.shares.iter().sum();
        assert!((sum - 1.0).abs() < 1e-9, "{estimate:?}");
        assert!(estimate.shares.iter().all(|&s| s >= 0.0));
        assert!(estimate.shares[0] > 0.99, "{estimate:?}");
    }

    #[test]
    fn alike_seconds_widen_the_interval_and_one_second_says_nothing() {
        // The same 60 faces, 30 % negative: spread evenly over 12 seconds, or in whole
        // seconds of one kind (the within-second likeness the interval must respect).
        let even = blocks_of(&[[2, 2, 1]; 12]);
        let mut clumped = SecondBlocks::default();
        for second in 0..12 {
            let counts = match second % 12 {
                0..=4 => [4, 1, 0],
                5..=8 => [0, 4, 1],
                _ => [0, 0, 5],
            };
            clumped.add_second(counts);
        }
        let width = |b: &SecondBlocks| {
            let e = estimate(b, None).unwrap();
            let [lo, hi] = e.interval_90(2);
            hi - lo
        };
        assert_eq!(even.counts(), [24.0, 24.0, 12.0]);
        // Identical seconds show no spread; seconds of one kind each show a wide one.
        assert!(width(&even) < 1e-6, "{}", width(&even));
        assert!(width(&clumped) > 0.2, "{}", width(&clumped));
        let one = estimate(&blocks_of(&[[3, 1, 1]]), None).unwrap();
        assert_eq!(one.interval_90(0), [0.0, 1.0]);
        assert!(one.verdict_within_error());
        assert_eq!(estimate(&SecondBlocks::default(), None), None);
    }

    #[test]
    fn blocks_merge_like_one_lesson() {
        let a = blocks_of(&[[1, 2, 3], [0, 0, 4]]);
        let b = blocks_of(&[[5, 0, 0], [0, 0, 0]]);
        assert_eq!(
            a.clone().merged(&b),
            blocks_of(&[[1, 2, 3], [0, 0, 4], [5, 0, 0]])
        );
        assert_eq!(a.merged(&b).seconds(), 3);
    }

    /// The adjusted count's calibration with [`em::tests::honest`]'s probability scaling.
    fn with_probabilities() -> Calibration {
        Calibration {
            probabilities: Some(em::tests::honest()),
            ..lenet_like()
        }
    }

    /// One second of `faces` faces of expression `label`, as that model sees them.
    fn add_faces(blocks: &mut SecondBlocks, label: usize, faces: u64) {
        let mut p = [0.4 / 6.0; 7];
        p[label] = 0.6;
        let mut counts = [0; 3];
        counts[crate::Expression::from_label(label)
            .unwrap()
            .category()
            .index()] = faces;
        blocks.add_second_with_probabilities(counts, p.map(|v| v * faces as f64));
    }

    #[test]
    fn seconds_with_probabilities_are_reweighted_and_others_fall_back_to_the_count() {
        let correction = Correction::new(&with_probabilities()).unwrap();
        let mut blocks = SecondBlocks::default();
        for label in em::tests::quarter_happy(6) {
            add_faces(&mut blocks, label, 3);
        }
        blocks.add_second_with_probabilities([0; 3], [0.0; 7]);
        let reweighted = estimate(&blocks, Some(&correction)).unwrap();
        assert_eq!(reweighted.method, Method::CalibratedEm);
        assert!((reweighted.shares[1] - 0.75).abs() < 0.02, "{reweighted:?}");
        assert_eq!(blocks.seconds(), 60);
        // Without the model's scaling, or with one second logged without probabilities,
        // the adjusted count.
        let counted = estimate(&blocks, Some(&correction.counting_only())).unwrap();
        assert_eq!(counted.method, Method::AdjustedCount);
        let mut older = SecondBlocks::default();
        older.add_second([0, 1, 0]);
        let merged = blocks.clone().merged(&older);
        assert_eq!(
            estimate(&merged, Some(&correction)).unwrap().method,
            Method::AdjustedCount
        );
        // A class of one re-weighted and one counted desk is "corrected", no more.
        let mean = Estimate::mean(&[reweighted, counted]).unwrap();
        assert_eq!(mean.method, Method::AdjustedCount);
    }

    #[test]
    fn a_lesson_in_parts_is_estimated_as_each_part_and_the_whole_alone() {
        let correction = Correction::new(&with_probabilities()).unwrap();
        // Three minutes, the second one without a face seen.
        let looks = em::tests::quarter_happy(4);
        let mut parts = vec![
            Some(SecondBlocks::default()),
            None,
            Some(SecondBlocks::default()),
        ];
        for (i, &label) in looks.iter().enumerate() {
            let part = if i < 25 { 0 } else { 2 };
            add_faces(parts[part].as_mut().unwrap(), label, 2);
        }
        let whole = parts
            .iter()
            .flatten()
            .fold(SecondBlocks::default(), SecondBlocks::merged);
        for with in [correction.clone(), correction.counting_only()] {
            let (lesson, each) = estimate_with_parts(&parts, Some(&with));
            assert_eq!(lesson, estimate(&whole, Some(&with)));
            assert_eq!(each.len(), 3);
            assert_eq!(each[1], None);
            for k in [0, 2] {
                assert_eq!(each[k], estimate(parts[k].as_ref().unwrap(), Some(&with)));
            }
        }
        assert_eq!(
            estimate_with_parts(&parts, Some(&correction))
                .0
                .unwrap()
                .method,
            Method::CalibratedEm
        );
        assert_eq!(
            estimate_with_parts(&[None, None], None),
            (None, vec![None, None])
        );
    }

    #[test]
    fn unusable_calibrations_are_refused() {
        let mut hostile = with_probabilities();
        if let Some(p) = hostile.probabilities.as_mut() {
            p.fit.slope = -1.0;
        }
        assert!(matches!(
            Correction::new(&hostile),
            Err(CalibrationError::Scaling(ScalingError::Slope(_)))
        ));
        let mut few = lenet_like();
        few.category_confusion[1] = [1, 10, 2];
        assert!(matches!(
            Correction::new(&few),
            Err(CalibrationError::TooFewFaces { category: 1, .. })
        ));
        let chance = Calibration {
            validation_of: "x".into(),
            category_confusion: [[100, 100, 100], [100, 100, 100], [100, 100, 101]],
            probabilities: None,
        };
        assert!(matches!(
            Correction::new(&chance),
            Err(CalibrationError::Singular(_))
        ));
        let huge = Calibration {
            validation_of: "x".into(),
            category_confusion: [[u64::MAX, 1, 1], [1, 100, 1], [1, 1, 100]],
            probabilities: None,
        };
        assert_eq!(Correction::new(&huge), Err(CalibrationError::TooManyFaces));
    }

    #[test]
    fn the_class_mean_gives_each_lesson_one_voice() {
        let a = Estimate {
            shares: [0.6, 0.2, 0.2],
            standard_errors: [0.03, 0.04, 0.05],
            method: Method::AdjustedCount,
        };
        let b = Estimate {
            shares: [0.0, 0.2, 0.8],
            ..a
        };
        let mean = Estimate::mean(&[a, b]).unwrap();
        assert!((mean.shares[2] - 0.5).abs() < 1e-12);
        assert!(!mean.is_good(), "a tie is bad");
        assert!((mean.standard_errors[2] - (0.05f64.powi(2) * 2.0).sqrt() / 2.0).abs() < 1e-12);
        assert!(mean.verdict_within_error());
        assert_eq!(Estimate::mean(&[]), None);
    }
}
