//! The larger-than-memory stage: W1's recipe on 600 000 rows (1.9 GB as f32) with a
//! 256 MiB dataset budget, so the server streams the rows from its database instead of
//! loading them. Reports the training server's peak RSS and the time per row of an epoch
//! against in-memory W1 runs (60 000 rows, within the budget) on the same database right
//! before and right after it: the machine's speed drifts over minutes, and the W1 run of
//! the main stage is minutes away.

use crate::table::{opt, row, verdict, Results, Row};
use crate::workloads::{self, JobRun};
use crate::{api, client::Conn, server::Server, Setup, W1_NAME};
use std::path::Path;
use std::time::Duration;

const NAME: &str = "bench-blobs784-large";
/// Epochs of each in-memory bracket run: the first epoch is left out of the median.
const BRACKET_EPOCHS: usize = 3;

pub struct StreamRun {
    pub rows: usize,
    pub budget: u64,
    pub job: JobRun,
    /// In-memory W1 before and after the streamed job, and its row count.
    pub in_memory: [JobRun; 2],
    pub in_memory_rows: usize,
}

impl StreamRun {
    fn seconds_per_row(&self) -> Option<f64> {
        self.job.median_epoch().map(|s| s / self.rows as f64)
    }

    /// Mean of the two bracket runs' median epochs, per row.
    fn in_memory_seconds_per_row(&self) -> Option<f64> {
        let [before, after] = &self.in_memory;
        let mean = (before.median_epoch()? + after.median_epoch()?) / 2.0;
        Some(mean / self.in_memory_rows as f64)
    }
}

/// Uploads the large CSV and W1's (once per database) and trains W1 on the large one with
/// the budget, between two in-memory W1 runs, each job on a server of its own so that the
/// streamed job's peak RSS is its own.
pub async fn run(s: &Setup, bin: &Path, db: &Path) -> Result<StreamRun, String> {
    let set = &s.large;
    let budget = s.stream_budget;
    let upload_args = ["--max-body-bytes".to_owned(), (8u64 << 30).to_string()];
    let train_args = ["--dataset-memory-bytes".to_owned(), budget.to_string()];
    let server = Server::start_with(
        bin,
        db,
        s.out.join("server-stream-upload.log"),
        &upload_args,
    )
    .await?;
    let mut c = Conn::open(server.addr).await?;
    for (data, name) in [(set, NAME), (&s.w1, W1_NAME)] {
        if workloads::find_dataset(&mut c, name).await.is_err() {
            eprintln!("uploading {} ...", data.path.display());
            let up = workloads::upload(&mut c, &data.path, name, data.target).await?;
            eprintln!("  {:.1} MB/s", up.mb_per_s());
        }
    }
    server.stop();
    let timeout = Duration::from_secs(60 * s.opts.job_minutes);
    let train_args = &train_args;
    let train = |name: &'static str, epochs: usize, log: &'static str| async move {
        let log = s.out.join(log);
        let server = Server::start_with(bin, db, log.clone(), train_args).await?;
        let mut c = Conn::open(server.addr).await?;
        let id = workloads::find_dataset(&mut c, name).await?;
        let job = workloads::train(
            &mut c,
            &api::w1_job(&id, epochs, s.opts.seed),
            server.pid(),
            timeout,
        )
        .await
        .map_err(|e| format!("{e}\n{}", server.log_tail()))?;
        server.stop();
        let streamed = std::fs::read_to_string(&log)
            .unwrap_or_default()
            // The message, not the field: the log may carry colour codes between key and value.
            .contains("streaming it from the database");
        Ok::<_, String>((job, streamed, log))
    };
    eprintln!("training W1 in memory on the stream stage's server ({BRACKET_EPOCHS} epochs) ...");
    let (before, _, _) = train(W1_NAME, BRACKET_EPOCHS, "server-stream-before.log").await?;
    eprintln!(
        "training W1 on {} rows streamed with a {} MiB budget ({} epochs) ...",
        set.rows.unwrap_or(0),
        budget >> 20,
        s.stream_epochs
    );
    let (job, streamed, log) = train(NAME, s.stream_epochs, "server-stream.log").await?;
    if !streamed {
        return Err(format!(
            "the job did not stream its dataset (see {})",
            log.display()
        ));
    }
    eprintln!("training W1 in memory again ({BRACKET_EPOCHS} epochs) ...");
    let (after, _, _) = train(W1_NAME, BRACKET_EPOCHS, "server-stream-after.log").await?;
    Ok(StreamRun {
        rows: set.rows.unwrap_or(0),
        budget,
        job,
        in_memory: [before, after],
        in_memory_rows: s.w1.rows.unwrap_or(60_000),
    })
}

/// Table rows: peak RSS against 600 MB, time per row against the bracketing in-memory W1.
pub fn rows(r: &Results) -> Vec<Row> {
    let Some(st) = &r.stream else {
        return Vec::new();
    };
    let mib = |b: u64| b as f64 / (1u64 << 20) as f64;
    let label = format!("{}k rows, {} MiB budget", st.rows / 1000, st.budget >> 20);
    let peak = st.job.server_peak_rss.map(mib);
    let ours = st.seconds_per_row();
    let memory = st.in_memory_seconds_per_row();
    let ratio = ours.zip(memory).map(|(o, m)| o / m);
    let accuracy = st
        .job
        .last()
        .and_then(|e| e.val_accuracy)
        .map(|a| a * 100.0);
    vec![
        row(
            &format!("W1 streamed ({label}): median epoch 2..N, s"),
            opt(st.job.median_epoch()),
            "—".into(),
            "—".into(),
            String::new(),
            "—",
            "—".into(),
        ),
        row(
            "W1 streamed: µs per row / in-memory W1",
            opt(ours.map(|s| s * 1e6)),
            "—".into(),
            "—".into(),
            format!(
                "{}× in-memory ({} µs)",
                opt(ratio),
                opt(memory.map(|m| m * 1e6))
            ),
            "≤ 1.5×",
            verdict(&[ratio.map(|x| x <= 1.5)]),
        ),
        row(
            "W1 streamed: peak RSS (server VmHWM), MiB",
            opt(peak),
            "—".into(),
            "—".into(),
            String::new(),
            "< 600",
            verdict(&[peak.map(|p| p < 600.0)]),
        ),
        row(
            "W1 streamed: final val accuracy, %",
            opt(accuracy),
            "—".into(),
            "—".into(),
            String::new(),
            "—",
            "—".into(),
        ),
    ]
}
