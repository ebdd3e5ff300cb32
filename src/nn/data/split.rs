//! The seeded random validation split.
//!
//! Keras holds out the *last* rows; a file sorted by label then validates on one
//! class only. Here the held-out rows are drawn at random with the seed, keeping
//! Keras' sizes (`train = floor(rows·(1 − split))`).

use crate::nn::ops::rng::{Rng, Stream};

#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Split {
    /// Row indices in ascending order (memory order, for cache-friendly gathers).
    pub train: Vec<usize>,
    pub validation: Vec<usize>,
}

/// Keras' sizes for `validation_split`: (training rows, validation rows), the training side
/// rounded down.
pub(crate) fn split_sizes(rows: usize, fraction: f64) -> (usize, usize) {
    if fraction <= 0.0 {
        return (rows, 0);
    }
    let train = ((rows as f64) * (1.0 - fraction)).floor() as usize;
    (train, rows - train)
}

pub(crate) fn split(rows: usize, fraction: f64, seed: u64) -> Split {
    if fraction <= 0.0 {
        return Split {
            train: (0..rows).collect(),
            validation: Vec::new(),
        };
    }
    let (train_rows, _) = split_sizes(rows, fraction);
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

/// The split of a dataset stored in chunks, as a per-row flag (true: validation). Keras'
/// sizes again, but validation takes whole chunks in a seeded random order (the last one
/// partly), so a validation pass reads only those chunks instead of every chunk, while
/// still sampling the whole file rather than its tail.
pub(crate) fn chunk_split(chunk_rows: &[usize], fraction: f64, seed: u64) -> Vec<bool> {
    let rows: usize = chunk_rows.iter().sum();
    let mut is_validation = vec![false; rows];
    let (_, mut needed) = split_sizes(rows, fraction);
    let first: Vec<usize> = chunk_rows
        .iter()
        .scan(0, |next, &n| {
            *next += n;
            Some(*next - n)
        })
        .collect();
    let mut order: Vec<usize> = (0..chunk_rows.len()).collect();
    Rng::new(seed, Stream::Split).shuffle(&mut order);
    for c in order {
        if needed == 0 {
            break;
        }
        let take = chunk_rows[c].min(needed);
        is_validation[first[c]..first[c] + take].fill(true);
        needed -= take;
    }
    is_validation
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

    #[test]
    fn chunk_split_sizes_whole_chunks_and_seed() {
        let chunks = [100, 100, 100, 100, 100, 100, 100, 100, 100, 55];
        let v = chunk_split(&chunks, 0.25, 42);
        // Keras' sizes: 955 rows, floor(955 · 0.75) = 716 training rows.
        assert_eq!(v.iter().filter(|&&b| b).count(), 955 - 716);
        // Whole chunks but at most one partly.
        let mut starts = 0;
        let mut partial = 0;
        for (c, &n) in chunks.iter().enumerate() {
            let part = &v[starts..starts + n];
            let k = part.iter().filter(|&&b| b).count();
            partial += usize::from(k > 0 && k < n);
            assert!(part[..k].iter().all(|&b| b), "chunk {c}: a prefix");
            starts += n;
        }
        assert!(partial <= 1);
        assert_eq!(v, chunk_split(&chunks, 0.25, 42));
        assert_ne!(v, chunk_split(&chunks, 0.25, 43));
        assert!(chunk_split(&chunks, 0.0, 1).iter().all(|&b| !b));
    }
}
