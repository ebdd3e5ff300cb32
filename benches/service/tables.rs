//! Typed tables (issue 14): a mixed table of numbers and categories with empty cells against
//! the same table encoded beforehand, in one run. The upload of a ~100 MB mixed CSV in MB/s,
//! and the median training epoch of a W1-sized network on 60 000 rows of such a table
//! against the same network on the numbers its encoding produces (the same width and
//! values: one-hot blocks, standardised numbers, missing indicators).

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::json;

use crate::client::Conn;
use crate::server::Server;
use crate::workloads::{self, JobRun, Upload};

const NUMBERS: usize = 10;
const CATEGORIES: usize = 10;
/// Rows of the ~100 MB upload and of the training table.
const UPLOAD_ROWS: usize = 960_000;
const TRAIN_ROWS: usize = 60_000;
const EPOCHS: usize = 6;

pub struct Tables {
    pub upload: Upload,
    pub mixed: JobRun,
    pub encoded: JobRun,
}

/// splitmix64, so the tables are the same bytes on every run.
struct Seeded(u64);

impl Seeded {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn uniform(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// Levels of category column `j`: 5 to 14.
fn levels(j: usize) -> usize {
    5 + j
}

/// One row: numbers in [-3, 3) and level indices, `None` for the 5% empty cells, and the
/// label (a rule on two numbers and two categories, so the network has something to learn).
fn row(rng: &mut Seeded) -> (Vec<Option<f64>>, Vec<Option<usize>>, u8) {
    let numbers: Vec<Option<f64>> = (0..NUMBERS)
        .map(|_| (rng.uniform() >= 0.05).then(|| rng.uniform() * 6.0 - 3.0))
        .collect();
    let categories: Vec<Option<usize>> = (0..CATEGORIES)
        .map(|j| (rng.uniform() >= 0.05).then(|| rng.next() as usize % levels(j)))
        .collect();
    let score = numbers[0].unwrap_or(0.0) - numbers[1].unwrap_or(0.0)
        + if categories[0].is_some_and(|l| l % 2 == 0) {
            1.5
        } else {
            -1.0
        }
        + if categories[3].is_none() { 2.0 } else { 0.0 };
    (numbers, categories, u8::from(score > 0.0))
}

fn header(encoded: bool) -> String {
    let mut h: Vec<String> = (0..NUMBERS)
        .flat_map(|i| {
            if encoded {
                vec![format!("n{i}"), format!("n{i}_missing")]
            } else {
                vec![format!("n{i}")]
            }
        })
        .collect();
    for j in 0..CATEGORIES {
        if encoded {
            // Out of vocabulary, the levels, the empty level.
            h.extend((0..levels(j) + 2).map(|k| format!("c{j}_{k}")));
        } else {
            h.push(format!("c{j}"));
        }
    }
    h.push("label".into());
    h.join(",") + "\n"
}

/// Writes `rows` rows as the raw table, and (when `encoded` is given) the same rows encoded.
fn write(rows: usize, raw: &Path, encoded: Option<&Path>) -> Result<(), String> {
    let mut rng = Seeded(14);
    let (mut text, mut numbers) = (header(false), header(true));
    for _ in 0..rows {
        let (n, c, label) = row(&mut rng);
        for v in &n {
            match v {
                Some(v) => write!(text, "{v:.4},").unwrap(),
                None => text.push(','),
            }
        }
        for v in &c {
            match v {
                Some(l) => write!(text, "l{l},").unwrap(),
                None => text.push(','),
            }
        }
        writeln!(text, "{label}").unwrap();
        if encoded.is_some() {
            // Uniform on [-3, 3): mean 0, standard deviation √3.
            for v in &n {
                match v {
                    Some(v) => write!(numbers, "{:.4},0,", v / 3f64.sqrt()).unwrap(),
                    None => numbers.push_str("0,1,"),
                }
            }
            for (j, v) in c.iter().enumerate() {
                let hot = v.map_or(levels(j) + 1, |l| l + 1);
                for k in 0..levels(j) + 2 {
                    numbers.push_str(if k == hot { "1," } else { "0," });
                }
            }
            writeln!(numbers, "{label}").unwrap();
        }
    }
    std::fs::write(raw, text).map_err(|e| format!("{}: {e}", raw.display()))?;
    if let Some(path) = encoded {
        std::fs::write(path, numbers).map_err(|e| format!("{}: {e}", path.display()))?;
    }
    Ok(())
}

fn job(dataset_id: &str, seed: u64) -> serde_json::Value {
    json!({
        "dataset_id": dataset_id,
        "model": {"layers": [
            {"type": "dense", "units": 256, "activation": "relu"},
            {"type": "dense", "units": 128, "activation": "relu"},
            {"type": "dense", "units": 1, "activation": "sigmoid"}
        ]},
        "loss": "binary_crossentropy",
        "metrics": ["accuracy"],
        "epochs": EPOCHS,
        "batch_size": 128,
        "validation_split": 0.2,
        "seed": seed
    })
}

pub async fn run(bin: &Path, dir: &Path, seed: u64, timeout: Duration) -> Result<Tables, String> {
    let path = |name: &str| -> PathBuf { dir.join(name) };
    eprintln!("writing the typed tables ...");
    write(UPLOAD_ROWS, &path("mixed-upload.csv"), None)?;
    write(
        TRAIN_ROWS,
        &path("mixed-train.csv"),
        Some(&path("encoded-train.csv")),
    )?;
    let server = Server::start(bin, &path("tables.db"), path("server-tables.log")).await?;
    let tail = |e: String| format!("{e}\n{}", server.log_tail());
    let mut c = Conn::open(server.addr).await?;
    eprintln!("uploading the ~100 MB mixed table ...");
    let upload = workloads::upload(&mut c, &path("mixed-upload.csv"), "bench-mixed", "label")
        .await
        .map_err(tail)?;
    let mixed_id = workloads::upload(&mut c, &path("mixed-train.csv"), "mixed", "label")
        .await
        .map_err(tail)?
        .dataset_id;
    let encoded_id = workloads::upload(&mut c, &path("encoded-train.csv"), "encoded", "label")
        .await
        .map_err(tail)?
        .dataset_id;
    eprintln!("training on the mixed table and on its encoding ...");
    let mixed = workloads::train(&mut c, &job(&mixed_id, seed), server.pid(), timeout)
        .await
        .map_err(tail)?;
    let encoded = workloads::train(&mut c, &job(&encoded_id, seed), server.pid(), timeout)
        .await
        .map_err(tail)?;
    server.stop();
    Ok(Tables {
        upload,
        mixed,
        encoded,
    })
}

pub fn report(t: &Tables) -> String {
    let (mixed, encoded) = (
        t.mixed.median_epoch().unwrap_or(f64::NAN),
        t.encoded.median_epoch().unwrap_or(f64::NAN),
    );
    format!(
        "Typed tables: {:.0} MB mixed CSV uploaded at {:.0} MB/s (target >= 100); \
         median epoch on {TRAIN_ROWS} mixed rows {mixed:.3} s against {encoded:.3} s on their \
         encoding: ratio {:.2} (target <= 1.2)",
        t.upload.bytes as f64 / 1e6,
        t.upload.mb_per_s(),
        mixed / encoded
    )
}
