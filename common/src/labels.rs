//! The seven FER-2013 expressions and their grouping into positive, neutral and negative
//! reactions, as the paper the product follows defines them.

use serde::{Deserialize, Serialize};

/// One FER-2013 expression; the discriminant is the data set's label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Expression {
    Angry = 0,
    Disgust = 1,
    Fear = 2,
    Happy = 3,
    Sad = 4,
    Surprise = 5,
    Neutral = 6,
}

/// The reaction group an expression counts towards.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Category {
    Positive,
    Neutral,
    Negative,
}

impl Category {
    /// The three groups in the order every share triple is written: positive, neutral,
    /// negative.
    pub const ALL: [Category; 3] = [Category::Positive, Category::Neutral, Category::Negative];

    /// Position in [`Category::ALL`].
    pub fn index(self) -> usize {
        self as usize
    }

    /// Lower-case English name, as in reports.
    pub fn name(self) -> &'static str {
        match self {
            Category::Positive => "positive",
            Category::Neutral => "neutral",
            Category::Negative => "negative",
        }
    }
}

impl Expression {
    /// All expressions in label order (the order of the model's outputs).
    pub const ALL: [Expression; 7] = [
        Expression::Angry,
        Expression::Disgust,
        Expression::Fear,
        Expression::Happy,
        Expression::Sad,
        Expression::Surprise,
        Expression::Neutral,
    ];

    /// The expression with FER-2013 label `label`, if it is one of 0..=6.
    pub fn from_label(label: usize) -> Option<Expression> {
        Self::ALL.get(label).copied()
    }

    /// The FER-2013 label (0..=6).
    pub fn label(self) -> usize {
        self as usize
    }

    /// Lower-case English name, as used in the data set's folder layout and in reports.
    pub fn name(self) -> &'static str {
        match self {
            Expression::Angry => "angry",
            Expression::Disgust => "disgust",
            Expression::Fear => "fear",
            Expression::Happy => "happy",
            Expression::Sad => "sad",
            Expression::Surprise => "surprise",
            Expression::Neutral => "neutral",
        }
    }

    /// The expression whose [`name`](Self::name) is `name` (case-insensitive).
    pub fn from_name(name: &str) -> Option<Expression> {
        Self::ALL
            .into_iter()
            .find(|e| e.name().eq_ignore_ascii_case(name))
    }

    /// The most probable expression of a model output in label order (the first on ties).
    pub fn most_probable(probabilities: &[f32]) -> Expression {
        Self::ALL[most_probable_index(probabilities).min(6)]
    }

    /// positive = happy, surprise; neutral = neutral; negative = angry, disgust, fear, sad.
    pub fn category(self) -> Category {
        match self {
            Expression::Happy | Expression::Surprise => Category::Positive,
            Expression::Neutral => Category::Neutral,
            Expression::Angry | Expression::Disgust | Expression::Fear | Expression::Sad => {
                Category::Negative
            }
        }
    }
}

/// Index of the largest value (the first on ties); 0 for an empty slice.
pub fn most_probable_index(values: &[f32]) -> usize {
    let mut best = 0;
    for (i, &v) in values.iter().enumerate() {
        if v > values[best] {
            best = i;
        }
    }
    best
}

impl std::fmt::Display for Expression {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_round_trip_in_dataset_order() {
        for (label, expr) in Expression::ALL.iter().enumerate() {
            assert_eq!(expr.label(), label);
            assert_eq!(Expression::from_label(label), Some(*expr));
            assert_eq!(Expression::from_name(expr.name()), Some(*expr));
        }
        assert_eq!(Expression::from_label(7), None);
        assert_eq!(Expression::from_name("Happy"), Some(Expression::Happy));
    }

    #[test]
    fn grouping_follows_the_paper() {
        use Category::*;
        let groups: Vec<Category> = Expression::ALL.iter().map(|e| e.category()).collect();
        assert_eq!(
            groups,
            vec![Negative, Negative, Negative, Positive, Negative, Positive, Neutral]
        );
    }
}
