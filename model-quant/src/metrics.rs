//! Classification metrics: accuracy, per-class precision / recall / F1 and the confusion
//! matrix.
//!
//! linfa 0.7's `ConfusionMatrix` orders its classes by a `HashSet` and drops samples whose
//! true class is never predicted, so its per-class scores cannot be tied to a label. We count
//! the 7×7 matrix ourselves in FER label order, derive per-class scores from it, and take
//! the order-independent aggregates (accuracy, macro precision, macro recall) from linfa as
//! the independent check; a test holds the two in agreement.

use anyhow::Result;
use ekspresi_common::Expression;
use linfa::prelude::ToConfusionMatrix;
use ndarray::Array1;
use serde::Serialize;

pub use ekspresi_common::labels::most_probable_index as argmax;

#[derive(Debug, Clone, Serialize)]
pub struct ClassReport {
    pub class: &'static str,
    pub precision: f64,
    pub recall: f64,
    pub f1: f64,
    pub support: usize,
}

/// linfa's view of the same predictions.
#[derive(Debug, Clone, Serialize)]
pub struct LinfaCheck {
    pub accuracy: f32,
    pub macro_precision: f32,
    pub macro_recall: f32,
}

/// The metrics `model-quant evaluate --json` prints.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub n: usize,
    pub accuracy: f64,
    pub per_class: Vec<ClassReport>,
    /// `confusion[true][predicted]`, FER label order.
    pub confusion: Vec<Vec<usize>>,
    /// Present when every class occurs in both truth and prediction (linfa needs that).
    pub linfa: Option<LinfaCheck>,
}

/// Scores `predicted` against `truth` (both FER labels 0..=6).
pub fn report(truth: &[usize], predicted: &[usize]) -> Result<Report> {
    let mut confusion = vec![vec![0usize; 7]; 7];
    for (&t, &p) in truth.iter().zip(predicted) {
        confusion[t][p] += 1;
    }
    let correct: usize = (0..7).map(|c| confusion[c][c]).sum();
    let per_class = Expression::ALL
        .iter()
        .map(|e| class_report(&confusion, e.label()))
        .collect();
    Ok(Report {
        n: truth.len(),
        accuracy: correct as f64 / truth.len().max(1) as f64,
        per_class,
        linfa: linfa_check(truth, predicted, &confusion)?,
        confusion,
    })
}

fn class_report(confusion: &[Vec<usize>], label: usize) -> ClassReport {
    let true_positive = confusion[label][label] as f64;
    let support: usize = confusion[label].iter().sum();
    let predicted: usize = (0..7).map(|t| confusion[t][label]).sum();
    let ratio = |num: f64, den: usize| if den == 0 { 0.0 } else { num / den as f64 };
    let precision = ratio(true_positive, predicted);
    let recall = ratio(true_positive, support);
    let f1 = if precision + recall == 0.0 {
        0.0
    } else {
        2.0 * precision * recall / (precision + recall)
    };
    ClassReport {
        class: Expression::from_label(label).map_or("?", |e| e.name()),
        precision,
        recall,
        f1,
        support,
    }
}

fn linfa_check(
    truth: &[usize],
    predicted: &[usize],
    confusion: &[Vec<usize>],
) -> Result<Option<LinfaCheck>> {
    let every_class_seen =
        (0..7).all(|c| (0..7).any(|t| confusion[t][c] > 0) && confusion[c].iter().any(|&n| n > 0));
    if !every_class_seen {
        return Ok(None);
    }
    let truth = Array1::from(truth.to_vec());
    let predicted = Array1::from(predicted.to_vec());
    // linfa 0.7 indexes its matrix (receiver, argument) and calls m00/(m00+m10) precision, so
    // the receiver must be the ground truth for its precision and recall to mean what they
    // say (the other way round swaps them; our test pins this down).
    let matrix = truth.confusion_matrix(&predicted)?;
    Ok(Some(LinfaCheck {
        accuracy: matrix.accuracy(),
        macro_precision: matrix.precision(),
        macro_recall: matrix.recall(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hand_checked_scores() {
        // 3 angry (2 right, 1 called happy), 2 happy (both right), 1 neutral called angry.
        let truth = [0, 0, 0, 3, 3, 6];
        let predicted = [0, 0, 3, 3, 3, 0];
        let r = report(&truth, &predicted).unwrap();
        assert_eq!(r.n, 6);
        assert!((r.accuracy - 4.0 / 6.0).abs() < 1e-12);
        assert_eq!(r.confusion[0], vec![2, 0, 0, 1, 0, 0, 0]);
        let angry = &r.per_class[0];
        assert!((angry.precision - 2.0 / 3.0).abs() < 1e-12);
        assert!((angry.recall - 2.0 / 3.0).abs() < 1e-12);
        let happy = &r.per_class[3];
        assert!((happy.precision - 2.0 / 3.0).abs() < 1e-12 && happy.recall == 1.0);
        assert_eq!(r.per_class[6].recall, 0.0);
        assert_eq!(r.per_class[1].support, 0);
        assert!(r.linfa.is_none(), "not every class predicted");
    }

    #[test]
    fn agrees_with_linfa_when_every_class_is_predicted() {
        let truth: Vec<usize> = (0..700).map(|i| i % 7).collect();
        let predicted: Vec<usize> = (0..700)
            .map(|i| if i % 5 == 0 { (i / 7) % 7 } else { i % 7 })
            .collect();
        let r = report(&truth, &predicted).unwrap();
        let linfa = r.linfa.clone().expect("all classes predicted");
        let macro_precision = r.per_class.iter().map(|c| c.precision).sum::<f64>() / 7.0;
        let macro_recall = r.per_class.iter().map(|c| c.recall).sum::<f64>() / 7.0;
        assert!((f64::from(linfa.accuracy) - r.accuracy).abs() < 1e-5);
        assert!((f64::from(linfa.macro_precision) - macro_precision).abs() < 1e-5);
        assert!((f64::from(linfa.macro_recall) - macro_recall).abs() < 1e-5);
    }
}
