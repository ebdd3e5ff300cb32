//! The seeded random validation split.
//!
//! Keras holds out the *last* rows; a file sorted by label then validates on one
//! class only. Here the held-out rows are drawn at random with the seed, keeping
//! Keras' sizes (`train = floor(rows·(1 − split))`).

use super::rng::{Rng, Stream};

#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Split {
    /// Row indices in ascending order (memory order, for cache-friendly gathers).
    pub train: Vec<usize>,
    pub validation: Vec<usize>,
}

pub(crate) fn split(rows: usize, fraction: f64, seed: u64) -> Split {
    if fraction <= 0.0 {
        return Split {
            train: (0..rows).collect(),
            validation: Vec::new(),
        };
    }
    let train_rows = ((rows as f64) * (1.0 - fraction)).floor() as usize;
    let mut order: Vec<usize> = (0..rows).collect();
    Rng::new(seed, Stream::Split).shuffle(&mut order);
    let (val, train) = order.split_at_mut(rows - train_rows);
    val.sort_unstable();
    train.sort_unstable();
    Split {
        train: train.to_vec(),
        validation: val.to_vec(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_disjointness_and_seed() {
        let s = split(1000, 0.1, 42);
        assert_eq!((s.train.len(), s.validation.len()), (900, 100));
        let mut all: Vec<usize> = s.train.iter().chain(&s.validation).copied().collect();
        all.sort_unstable();
        assert_eq!(all, (0..1000).collect::<Vec<_>>());
        // Random, not the tail: validation rows spread over the whole file.
        assert!(s.validation.iter().any(|&r| r < 500) && s.validation.iter().any(|&r| r >= 500));
        assert_eq!(s, split(1000, 0.1, 42));
        assert_ne!(s, split(1000, 0.1, 43));
        assert_eq!(split(10, 0.0, 1).validation.len(), 0);
    }
}
