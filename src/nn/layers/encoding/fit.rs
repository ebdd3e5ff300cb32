//! Fitting an encoding: the statistics of the training rows, gathered part by part (the
//! rows in memory at once, or a streamed dataset chunk by chunk), then each column's plan
//! turned into its fitted [`How`].

use std::collections::HashMap;

use super::spec::{CrossPlan, Fill, Plan, Scale};
use super::{number_level, Cross, EncodedColumn, Encoding, How, EMPTY};
use crate::nn::data::cell::{self, Cell};
use crate::nn::data::{Column, ColumnKind};
use crate::nn::ops::rng::{Rng, Stream};

/// Values kept per numeric column for medians, modes and quantile bins: exact up to this
/// many training rows, a uniform sample (seeded, so refits agree) beyond.
const SAMPLE: usize = 100_000;

pub(crate) struct EncodingFit {
    columns: Vec<Column>,
    plans: Vec<Plan>,
    crosses: Vec<CrossPlan>,
    class_names: Option<Vec<String>>,
    missing_markers: Option<Vec<String>>,
    stats: Vec<ColumnFit>,
}

enum ColumnFit {
    Skip,
    Number {
        n: u64,
        mean: f64,
        m2: f64,
        missing: u64,
        sample: Option<Reservoir>,
    },
    Category {
        counts: Vec<u64>,
        numbers: HashMap<u32, u64>,
        missing: u64,
    },
}

/// Algorithm R over a column's numbers.
struct Reservoir {
    values: Vec<f32>,
    seen: u64,
    rng: Rng,
}

impl Reservoir {
    fn new() -> Reservoir {
        Reservoir {
            values: Vec::new(),
            seen: 0,
            rng: Rng::new(0, Stream::Sample),
        }
    }

    fn add(&mut self, v: f32) {
        self.seen += 1;
        if self.values.len() < SAMPLE {
            self.values.push(v);
        } else {
            let at = (self.rng.next_u64() % self.seen) as usize;
            if at < SAMPLE {
                self.values[at] = v;
            }
        }
    }

    fn sorted(mut self) -> Vec<f32> {
        self.values.sort_unstable_by(f32::total_cmp);
        self.values
    }
}

impl EncodingFit {
    pub fn new(
        columns: &[Column],
        plans: &[Plan],
        crosses: &[CrossPlan],
        class_names: Option<Vec<String>>,
    ) -> EncodingFit {
        let stats = columns
            .iter()
            .zip(plans)
            .map(|(c, plan)| match plan {
                Plan::Skip => ColumnFit::Skip,
                Plan::Number { scale, fill, .. } => ColumnFit::Number {
                    n: 0,
                    mean: 0.0,
                    m2: 0.0,
                    missing: 0,
                    sample: (matches!(scale, Scale::Quantiles(_))
                        || matches!(fill, Fill::Median | Fill::MostFrequent))
                    .then(Reservoir::new),
                },
                Plan::Lookup { .. } | Plan::Hashed { .. } => ColumnFit::Category {
                    counts: vec![0; levels(&c.kind).len()],
                    numbers: HashMap::new(),
                    missing: 0,
                },
            })
            .collect();
        EncodingFit {
            columns: columns.to_vec(),
            plans: plans.to_vec(),
            crosses: crosses.to_vec(),
            class_names,
            missing_markers: None,
            stats,
        }
    }

    /// The upload's own missing-value markers, when not the defaults.
    pub fn with_missing_markers(self, markers: Option<Vec<String>>) -> EncodingFit {
        EncodingFit {
            missing_markers: markers,
            ..self
        }
    }

    /// Adds training rows (cells; each at least as wide as the columns).
    pub fn add_rows<'r>(&mut self, rows: impl Iterator<Item = &'r [f32]>) {
        for row in rows {
            for (stats, &value) in self.stats.iter_mut().zip(row) {
                match (stats, cell::decode(value)) {
                    (ColumnFit::Skip, _) => {}
                    (
                        ColumnFit::Number {
                            n,
                            mean,
                            m2,
                            sample,
                            ..
                        },
                        Cell::Number(v),
                    ) => {
                        // Welford's update: one pass, stable for large offsets.
                        *n += 1;
                        let x = f64::from(v);
                        let delta = x - *mean;
                        *mean += delta / *n as f64;
                        *m2 += delta * (x - *mean);
                        if let Some(sample) = sample {
                            sample.add(v);
                        }
                    }
                    (ColumnFit::Number { missing, .. }, _) => *missing += 1,
                    (ColumnFit::Category { counts, .. }, Cell::Level(code)) => {
                        if let Some(c) = counts.get_mut(code as usize) {
                            *c += 1;
                        }
                    }
                    (ColumnFit::Category { numbers, .. }, Cell::Number(v)) => {
                        *numbers.entry(v.to_bits()).or_default() += 1;
                    }
                    (ColumnFit::Category { missing, .. }, Cell::Missing) => *missing += 1,
                }
            }
        }
    }

    pub fn finish(self) -> Encoding {
        let columns = self
            .columns
            .into_iter()
            .zip(self.plans)
            .zip(self.stats)
            .map(|((column, plan), stats)| EncodedColumn {
                drops_missing: plan.drops_missing(),
                how: fitted(plan, stats, levels(&column.kind).to_vec()),
                name: column.name,
            })
            .collect();
        let crosses = self
            .crosses
            .into_iter()
            .map(|c| Cross {
                columns: c.columns,
                crossing_dim: c.crossing_dim,
            })
            .collect();
        let mut encoding = Encoding::new(columns, crosses, self.class_names);
        encoding.missing_markers = self.missing_markers;
        encoding
    }
}

/// A column's vocabulary (none for numbers).
fn levels(kind: &ColumnKind) -> &[String] {
    match kind {
        ColumnKind::Number => &[],
        ColumnKind::Category { levels } | ColumnKind::Identifier { levels } => levels,
    }
}

fn fitted(plan: Plan, stats: ColumnFit, vocabulary: Vec<String>) -> How {
    match (plan, stats) {
        (
            Plan::Number {
                scale,
                fill,
                indicator,
            },
            ColumnFit::Number {
                n,
                mean,
                m2,
                missing,
                sample,
            },
        ) => {
            let sorted = sample.map(Reservoir::sorted).unwrap_or_default();
            let fill_value = match fill {
                Fill::Median => median(&sorted),
                Fill::MostFrequent => mode(&sorted),
                Fill::Number(v) => v,
                Fill::Mean | Fill::OwnLevel | Fill::Text(_) | Fill::DropRow => mean as f32,
            };
            let indicator = indicator.unwrap_or(missing > 0);
            match scale {
                Scale::Normalize => {
                    let std = if n > 0 { (m2 / n as f64).sqrt() } else { 0.0 };
                    How::Standardize {
                        mean: mean as f32,
                        // A constant column keeps scale 1, as `Normalization` does.
                        inv_std: if std > 1e-7 { (1.0 / std) as f32 } else { 1.0 },
                        indicator,
                        fill: (fill != Fill::Mean).then_some(fill_value),
                    }
                }
                Scale::Raw => How::Rescale {
                    scale: 1.0,
                    offset: 0.0,
                    fill: fill_value,
                    indicator,
                },
                Scale::Rescale { scale, offset } => How::Rescale {
                    scale,
                    offset,
                    fill: fill_value,
                    indicator,
                },
                Scale::Quantiles(bins) => How::Discretize {
                    boundaries: quantile_boundaries(&sorted, bins),
                    fill: fill_value,
                    indicator,
                },
                Scale::Boundaries(boundaries) => How::Discretize {
                    boundaries,
                    fill: fill_value,
                    indicator,
                },
            }
        }
        (
            plan @ (Plan::Lookup { .. } | Plan::Hashed { .. }),
            ColumnFit::Category {
                counts,
                numbers,
                missing,
            },
        ) => {
            let (fill, indicator) = match &plan {
                Plan::Lookup {
                    fill, indicator, ..
                }
                | Plan::Hashed {
                    fill, indicator, ..
                } => (fill.clone(), *indicator),
                _ => unreachable!("matched above"),
            };
            let mut seen: Vec<(u64, String)> = counts
                .iter()
                .zip(&vocabulary)
                .filter(|(&n, _)| n > 0)
                .map(|(&n, level)| (n, level.clone()))
                .collect();
            let mut numeric: Vec<(u32, u64)> = numbers.into_iter().collect();
            numeric.sort_unstable();
            seen.extend(
                numeric
                    .into_iter()
                    .map(|(bits, n)| (n, number_level(f32::from_bits(bits)))),
            );
            if missing > 0 && fill == Fill::OwnLevel {
                seen.push((missing, EMPTY.to_owned()));
            }
            // Most frequent first; ties keep vocabulary order (a stable sort).
            seen.sort_by_key(|s| std::cmp::Reverse(s.0));
            let missing_level = match fill {
                Fill::MostFrequent => seen.first().map(|s| s.1.clone()),
                Fill::Text(t) => Some(t),
                _ => None,
            };
            match plan {
                Plan::Lookup {
                    max_tokens,
                    num_oov,
                    embedding_dim,
                    ..
                } => {
                    seen.truncate(max_tokens);
                    let kept = seen.into_iter().map(|(_, level)| level).collect();
                    match embedding_dim {
                        None => How::OneHot {
                            vocabulary,
                            kept,
                            num_oov,
                            missing_level,
                            indicator,
                        },
                        Some(dim) => How::Embed {
                            vocabulary,
                            kept,
                            num_oov,
                            missing_level,
                            indicator,
                            dim,
                        },
                    }
                }
                Plan::Hashed { num_bins, .. } => How::Hashed {
                    vocabulary,
                    num_bins,
                    missing_level,
                    indicator,
                },
                _ => unreachable!("matched above"),
            }
        }
        _ => How::Skip,
    }
}

/// The middle value (the mean of the two middle ones for an even count), as pandas gives.
fn median(sorted: &[f32]) -> f32 {
    match sorted.len() {
        0 => 0.0,
        n if n % 2 == 1 => sorted[n / 2],
        n => ((f64::from(sorted[n / 2 - 1]) + f64::from(sorted[n / 2])) / 2.0) as f32,
    }
}

/// The most frequent value; ties go to the smallest.
fn mode(sorted: &[f32]) -> f32 {
    let mut best = (0usize, 0.0f32);
    let mut i = 0;
    while i < sorted.len() {
        let run = sorted[i..].partition_point(|v| v.total_cmp(&sorted[i]).is_eq());
        if run > best.0 {
            best = (run, sorted[i]);
        }
        i += run;
    }
    best.1
}

/// `bins − 1` boundaries at the training split's `i/bins` quantiles (the lower value at
/// each rank), so that each bin holds about as many training rows.
fn quantile_boundaries(sorted: &[f32], bins: usize) -> Vec<f32> {
    (1..bins)
        .map(|i| match sorted.len() {
            0 => 0.0,
            n => sorted[(i * n / bins).min(n - 1)],
        })
        .collect()
}
