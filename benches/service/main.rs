//! `cargo bench --bench service`: nnserve against Keras and PyTorch on the workloads of
//! ../shared/bench, through the real server over HTTP (issue 4). Prints one table.
//! Options: `cargo bench --bench service -- --help`.

mod anchors;
mod api;
mod client;
mod data;
mod floor;
mod latency;
mod peak;
mod protocols;
mod server;
mod stream;
mod table;
mod tables;
mod workloads;

use anchors::{Anchor, Framework, Source};
use bytes::Bytes;
use clap::{Parser, ValueEnum};
use client::Conn;
use data::DataSet;
use latency::{Budget, Target};
use server::Server;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;
use table::Results;

#[derive(Clone, Copy, PartialEq, Eq, Debug, ValueEnum)]
enum Part {
    Anchors,
    Upload,
    W1,
    W2,
    Predict,
    Floor,
    /// The larger-than-memory stage (600 000 rows, ~1.5 GB CSV, several minutes).
    Stream,
    /// Typed tables: a mixed 100 MB upload, and training on a mixed table against its
    /// encoding.
    Tables,
    /// 1000- and 100 000-row predicts through the Open Inference Protocol (binary and
    /// JSON) and /predict, beside PyTorch's in-process call.
    Protocols,
}

impl Part {
    /// The index of a workload's anchors in `Results` (W1 0, W2 1).
    fn workload(self) -> usize {
        match self {
            Part::W2 => 1,
            _ => 0,
        }
    }
}

#[derive(Parser, Debug)]
#[command(
    about = "nnserve benchmark: training, predict and upload through the real server, beside Keras and PyTorch"
)]
struct Opts {
    /// Small data (6000 / 2000 rows) and few epochs: a smoke run, not comparable to the targets.
    #[arg(long, env = "NNSERVE_BENCH_QUICK")]
    quick: bool,
    /// Parts to leave out, comma-separated. `upload` reuses the datasets of a database kept with
    /// --db (the stream stage keeps its own beside it, FILE.stream.db).
    #[arg(long, env = "NNSERVE_BENCH_SKIP", value_delimiter = ',')]
    skip: Vec<Part>,
    /// Epochs of W1 and W2, for nnserve and the anchors alike (recipes: 5 and 20).
    #[arg(long, env = "NNSERVE_BENCH_EPOCHS")]
    epochs: Option<usize>,
    /// Keep the server's database in this file instead of a temporary one.
    #[arg(long, env = "NNSERVE_BENCH_DB")]
    db: Option<PathBuf>,
    /// The server binary (default: the nnserve cargo built beside this benchmark).
    #[arg(long, env = "NNSERVE_BIN")]
    bin: Option<PathBuf>,
    /// Directory holding make_data.py and the anchor scripts.
    #[arg(long, env = "NNSERVE_BENCH_SCRIPTS")]
    scripts: Option<PathBuf>,
    /// Seed of the training jobs.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Most minutes one training job may take before it is cancelled.
    #[arg(long, default_value_t = 30)]
    job_minutes: u64,
    /// Rows of the stream stage's dataset (its CSV is bench-data/blobs784-<rows/1000>k.csv).
    #[arg(long, env = "NNSERVE_BENCH_STREAM_ROWS", default_value_t = 600_000)]
    stream_rows: usize,
    /// Passed by `cargo bench`; ignored.
    #[arg(long, hide = true)]
    bench: bool,
}

struct Setup {
    opts: Opts,
    root: PathBuf,
    scripts: PathBuf,
    python: PathBuf,
    out: PathBuf,
    w1: DataSet,
    w2: DataSet,
    w1_epochs: usize,
    w2_epochs: usize,
    /// The stream stage: its data, its `--dataset-memory-bytes`, its epochs.
    large: DataSet,
    stream_budget: u64,
    stream_epochs: usize,
}

impl Setup {
    fn wants(&self, p: Part) -> bool {
        !self.opts.skip.contains(&p)
    }

    /// Epochs to pass to the anchors: only when they differ from the recipe's.
    fn anchor_epochs(&self, w: usize) -> Option<usize> {
        let recipe = [5, 20][w];
        let e = [self.w1_epochs, self.w2_epochs][w];
        (e != recipe).then_some(e)
    }

    fn budget(&self) -> Budget {
        match self.opts.quick {
            true => Budget {
                warmup: 50,
                sequential: 300,
                concurrent_requests: 2_000,
                concurrent_seconds: 3.0,
                connections: 32,
                batch_requests: 5,
            },
            false => Budget {
                warmup: 500,
                sequential: 5_000,
                concurrent_requests: 100_000,
                concurrent_seconds: 10.0,
                connections: 32,
                batch_requests: 30,
            },
        }
    }
}

fn setup(opts: Opts) -> Result<Setup, String> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let scripts = opts
        .scripts
        .clone()
        .unwrap_or_else(|| root.join("../shared/bench"));
    if !scripts.join("make_data.py").exists() {
        return Err(format!(
            "{} has no make_data.py; set NNSERVE_BENCH_SCRIPTS",
            scripts.display()
        ));
    }
    let (dir, w1_rows, w2_rows) = match opts.quick {
        true => (root.join("bench-data/quick"), Some(6_000), Some(2_000)),
        false => (root.join("bench-data"), None, None),
    };
    // Quick: 10× W1's rows against a budget 10× smaller than the full run's, so it streams.
    let (large_rows, stream_budget) = match opts.quick {
        true => (60_000, 24 << 20),
        false => (opts.stream_rows, 256 << 20),
    };
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let out = root.join(format!("target/bench-service/{stamp}"));
    std::fs::create_dir_all(&out).map_err(|e| format!("{}: {e}", out.display()))?;
    let w1_epochs = opts.epochs.unwrap_or(if opts.quick { 2 } else { 5 });
    let w2_epochs = opts.epochs.unwrap_or(if opts.quick { 3 } else { 20 });
    Ok(Setup {
        python: data::python(&root),
        w1: DataSet {
            generator: "blobs784",
            rows: w1_rows,
            path: dir.join("blobs784.csv"),
            target: "label",
        },
        w2: DataSet {
            generator: "tiny4",
            rows: w2_rows,
            path: dir.join("tiny4.csv"),
            target: "y",
        },
        large: DataSet {
            generator: "blobs784",
            rows: Some(large_rows),
            path: dir.join(format!("blobs784-{}k.csv", large_rows / 1000)),
            target: "label",
        },
        stream_budget,
        stream_epochs: opts.epochs.map_or(2, |e| e.min(2)),
        opts,
        root,
        scripts,
        out,
        w1_epochs,
        w2_epochs,
    })
}

const W1_NAME: &str = "bench-blobs784";
const W2_NAME: &str = "bench-tiny4";

/// Upload, training and predict against the real server; fills the nnserve column.
async fn nnserve(
    s: &Setup,
    r: &mut Results,
    single: &Bytes,
    batch: &Bytes,
    floor: Option<&Target<'_>>,
) -> Result<(), String> {
    if ![
        Part::Upload,
        Part::W1,
        Part::W2,
        Part::Predict,
        Part::Stream,
        Part::Tables,
    ]
    .iter()
    .any(|p| s.wants(*p))
    {
        return Ok(());
    }
    let bin = s
        .opts
        .bin
        .clone()
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_nnserve")));
    let tmp = tempfile::tempdir().map_err(|e| e.to_string())?;
    let db = s
        .opts
        .db
        .clone()
        .unwrap_or_else(|| tmp.path().join("bench.db"));
    let (mut w1_id, mut w2_id) = (None, None);
    if s.wants(Part::Upload) {
        // The upload server is stopped before training so that the training server's
        // VmHWM is the peak of training alone, not of parsing 153 MB of CSV.
        let server = Server::start(&bin, &db, s.out.join("server-upload.log")).await?;
        let mut c = Conn::open(server.addr).await?;
        eprintln!("uploading {} ...", s.w1.path.display());
        let up = workloads::upload(&mut c, &s.w1.path, W1_NAME, s.w1.target)
            .await
            .map_err(|e| format!("{e}\n{}", server.log_tail()))?;
        w1_id = Some(up.dataset_id.clone());
        r.upload = Some(up);
        w2_id = Some(
            workloads::upload(&mut c, &s.w2.path, W2_NAME, s.w2.target)
                .await?
                .dataset_id,
        );
        server.stop();
    }
    let server = Server::start(&bin, &db, s.out.join("server.log")).await?;
    let mut c = Conn::open(server.addr).await?;
    let timeout = Duration::from_secs(60 * s.opts.job_minutes);
    let tail = |e: String| format!("{e}\n{}", server.log_tail());
    if s.wants(Part::W1) {
        let id = match w1_id {
            Some(id) => id,
            None => workloads::find_dataset(&mut c, W1_NAME).await?,
        };
        let job = api::w1_job(&id, s.w1_epochs, s.opts.seed);
        eprintln!(
            "measuring the fp32 peak, then training W1 ({} epochs) ...",
            s.w1_epochs
        );
        r.peak[0] = peak::measure();
        r.w1 = Some(
            workloads::train(&mut c, &job, server.pid(), timeout)
                .await
                .map_err(tail)?,
        );
        // The host's speed drifts over minutes: W1's anchors run right here, between two
        // nnserve runs, so that the ratio compares runs of the same phase.
        if s.wants(Part::Anchors) {
            run_anchors(s, r, Part::W1);
            eprintln!("training W1 again, after its anchors ...");
            r.w1_again = Some(
                workloads::train(&mut c, &job, server.pid(), timeout)
                    .await
                    .map_err(tail)?,
            );
        }
        r.peak[1] = peak::measure();
    }
    if s.wants(Part::W2) {
        let id = match w2_id {
            Some(id) => id,
            None => workloads::find_dataset(&mut c, W2_NAME).await?,
        };
        eprintln!("training W2 ({} epochs) ...", s.w2_epochs);
        r.w2 = Some(
            workloads::train(
                &mut c,
                &api::w2_job(&id, s.w2_epochs, s.opts.seed),
                server.pid(),
                timeout,
            )
            .await
            .map_err(tail)?,
        );
    }
    if let (true, Some(w1)) = (s.wants(Part::Predict), &r.w1) {
        eprintln!("measuring predict ...");
        let path = api::predict(&w1.model_id);
        let target = Target {
            addr: server.addr,
            path: &path,
            single: single.clone(),
            batch: batch.clone(),
            batch_rows: 1000,
        };
        check_predict(&mut c, &path, batch).await.map_err(tail)?;
        let targets: Vec<&Target> = std::iter::once(&target).chain(floor).collect();
        if floor.is_some() {
            eprintln!("measuring predict and the HTTP floor, alternately ...");
        }
        let mut figures = latency::measure(&targets, &s.budget())
            .await
            .map_err(tail)?
            .into_iter();
        r.predict = figures.next();
        r.floor = figures.next();
    }
    server.stop();
    if s.wants(Part::Stream) {
        let db = match &s.opts.db {
            Some(file) => file.with_extension("stream.db"),
            None => tmp.path().join("stream.db"),
        };
        r.stream = Some(stream::run(s, &bin, &db).await?);
    }
    if s.wants(Part::Tables) {
        r.tables = Some(tables::run(&bin, tmp.path(), s.opts.seed, timeout).await?);
    }
    Ok(())
}

/// One 1000-row predict must answer 1000 predictions before its speed means anything.
async fn check_predict(c: &mut Conn, path: &str, batch: &Bytes) -> Result<(), String> {
    let reply = c
        .request(
            hyper::Method::POST,
            path,
            Some("application/json"),
            batch.clone(),
        )
        .await?;
    let v = reply.expect("predict 1000 rows", hyper::StatusCode::OK)?;
    match api::prediction_count(&v) {
        Some(1000) => Ok(()),
        n => Err(format!("predict of 1000 rows returned {n:?} predictions")),
    }
}

/// The Keras and PyTorch anchors of one workload (`Part::W1` or `Part::W2`).
fn run_anchors(s: &Setup, r: &mut Results, only: Part) {
    for fw in [Framework::Keras, Framework::Torch] {
        let slot = match fw {
            Framework::Keras => &mut r.keras,
            Framework::Torch => &mut r.torch,
        };
        if !data::importable(&s.python, fw.modules()) {
            eprintln!(
                "{} is not importable by {}: using the reference figures of {}/README.md.\n  To measure it here: python3 -m venv .venv-bench && {}\n  (or set NNSERVE_BENCH_PYTHON)",
                fw.name(),
                s.python.display(),
                s.scripts.display(),
                fw.install_hint()
            );
            *slot = [0, 1].map(|_| {
                Some(Anchor {
                    framework: fw,
                    source: Source::Reference,
                })
            });
            continue;
        }
        for (w, (part, set, workload)) in [(Part::W1, &s.w1, "mlp784"), (Part::W2, &s.w2, "tiny4")]
            .into_iter()
            .enumerate()
        {
            if part != only || !s.wants(part) {
                continue;
            }
            eprintln!("running the {} anchor on {workload} ...", fw.name());
            let log = s
                .out
                .join(format!("{}-{workload}.log", fw.name().to_lowercase()));
            let source = anchors::run(
                &s.python,
                &s.scripts,
                fw,
                workload,
                &set.path,
                s.anchor_epochs(w),
                &log,
            );
            if let Source::Failed(why) = &source {
                eprintln!("  {} {workload} failed: {why}", fw.name());
            }
            slot[w] = Some(Anchor {
                framework: fw,
                source,
            });
        }
    }
}

async fn run(s: Setup) -> Result<(), String> {
    for set in [&s.w1, &s.w2] {
        data::ensure(&s.python, &s.scripts, set)?;
    }
    if s.wants(Part::Stream) {
        data::ensure(&s.python, &s.scripts, &s.large)?;
    }
    let rows = data::feature_rows(&s.w1.path, 1000)?;
    let single = Bytes::from(api::instances_body(&rows[..1]));
    let batch = Bytes::from(api::instances_body(&rows));
    let mut r = Results {
        w1_rows: s.w1.rows.unwrap_or(60_000),
        ..Results::default()
    };
    // The floor server runs in this process until it ends; predict's stage measures it
    // alongside predict, or here when predict is left out.
    let floor = match s.wants(Part::Floor) {
        true => {
            eprintln!("{}", floor::parse_microbench(&batch, 784, 15));
            Some(floor::start(784, 10)?)
        }
        false => None,
    };
    let floor_target = floor.map(|addr| Target {
        addr,
        path: floor::PATH,
        single: single.clone(),
        batch: batch.clone(),
        batch_rows: 1000,
    });
    let served = nnserve(&s, &mut r, &single, &batch, floor_target.as_ref()).await;
    if let (Some(target), None) = (&floor_target, &r.floor) {
        eprintln!("measuring the HTTP floor ...");
        r.floor = latency::measure(&[target], &s.budget()).await?.pop();
    }
    if s.wants(Part::Anchors) {
        // W1's anchors ran beside nnserve's W1 unless that was left out. Either framework
        // may still lack a workload's figure (the other one not installed fills both of
        // its own slots with the README's).
        for part in [Part::W1, Part::W2] {
            let w = part.workload();
            if r.keras[w].is_none() || r.torch[w].is_none() {
                run_anchors(&s, &mut r, part);
            }
        }
    }
    let protocols = match s.wants(Part::Protocols) {
        true => Some(run_protocols(&s).await?),
        false => None,
    };
    print_report(&s, &r);
    if let Some(figures) = protocols {
        println!(
            "\nOne predict request, W1's network:\n{}",
            protocols::report(&figures)
        );
    }
    served
}

async fn run_protocols(s: &Setup) -> Result<Vec<protocols::Figure>, String> {
    let bin = s
        .opts
        .bin
        .clone()
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_nnserve")));
    let tmp = tempfile::tempdir().map_err(|e| e.to_string())?;
    protocols::run(s, &bin, tmp.path()).await
}

fn print_report(s: &Setup, r: &Results) {
    let mut rows = table::rows(r);
    rows.extend(stream::rows(r));
    let table = table::render(&rows);
    println!("\n{table}");
    println!("* in-process calls of the anchor scripts (no HTTP); nnserve's figures are over HTTP on loopback.");
    println!("Ratios are anchor time / nnserve time (how many times faster nnserve is). \"(ref)\": README figure, not measured now.");
    println!(
        "W1: {} rows, {} epochs; W2: {} rows, {} epochs.{}",
        s.w1.rows.map_or("60000".into(), |n| n.to_string()),
        s.w1_epochs,
        s.w2.rows.map_or("10000".into(), |n| n.to_string()),
        s.w2_epochs,
        if s.opts.quick {
            " QUICK RUN: not comparable to the targets."
        } else {
            ""
        }
    );
    if let [Some(before), Some(after)] = r.peak {
        println!("fp32 peak of all cores, measured right before and right after W1: {before:.0} and {after:.0} GFLOP/s");
    }
    let seconds = |j: &workloads::JobRun| {
        let e: Vec<String> = j
            .epochs
            .iter()
            .map(|e| format!("{:.3}", e.seconds))
            .collect();
        e.join(", ")
    };
    if let Some(j) = &r.w1_again {
        println!(
            "W1 ran twice, its anchors between the two; nnserve's median epoch is the mean of both. After the anchors: [{}]",
            seconds(j)
        );
    }
    if let Some(j) = &r.w1 {
        println!(
            "W1 epoch seconds: [{}]; job wall time {:.2} s; server max sampled RSS {} MiB",
            seconds(j),
            j.wall_seconds,
            j.server_max_sampled_rss
                .map_or("?".into(), |b| (b >> 20).to_string())
        );
    }
    if let Some(t) = &r.tables {
        println!("{}", tables::report(t));
    }
    let path = s.out.join("table.md");
    let _ = std::fs::write(&path, &table);
    println!(
        "logs and this table: {}   (data: {}, python: {})",
        s.out.display(),
        s.root.join("bench-data").display(),
        s.python.display()
    );
}

fn main() -> ExitCode {
    let opts = Opts::parse();
    let result = setup(opts).and_then(|s| {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| e.to_string())?;
        rt.block_on(run(s))
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("benchmark failed: {e}");
            ExitCode::FAILURE
        }
    }
}
