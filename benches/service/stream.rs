//! The larger-than-memory stage: W1's recipe on 600 000 rows (1.9 GB as f32) with a
//! 256 MiB dataset budget, so the server streams the rows from its database instead of
//! loading them. Reports the training server's peak RSS and the time per row of an epoch
//! against the in-memory W1 run of the same invocation.

use crate::table::{opt, row, verdict, Results, Row};
use crate::workloads::{self, JobRun};
use crate::{api, client::Conn, server::Server, Setup};
use std::path::Path;
use std::time::Duration;

const NAME: &str = "bench-blobs784-large";

pub struct StreamRun {
    pub rows: usize,
    pub budget: u64,
    pub job: JobRun,
}

impl StreamRun {
    fn seconds_per_row(&self) -> Option<f64> {
        self.job.median_epoch().map(|s| s / self.rows as f64)
    }
}

/// Uploads the large CSV (once per database) and trains W1 on it with the budget.
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
    if workloads::find_dataset(&mut c, NAME).await.is_err() {
        eprintln!("uploading {} ...", set.path.display());
        let up = workloads::upload(&mut c, &set.path, NAME, set.target).await?;
        eprintln!("  {:.1} MB/s", up.mb_per_s());
    }
    server.stop();
    let log = s.out.join("server-stream.log");
    let server = Server::start_with(bin, db, log.clone(), &train_args).await?;
    let mut c = Conn::open(server.addr).await?;
    let id = workloads::find_dataset(&mut c, NAME).await?;
    eprintln!(
        "training W1 on {} rows streamed with a {} MiB budget ({} epochs) ...",
        set.rows.unwrap_or(0),
        budget >> 20,
        s.stream_epochs
    );
    let timeout = Duration::from_secs(60 * s.opts.job_minutes);
    let job = workloads::train(
        &mut c,
        &api::w1_job(&id, s.stream_epochs, s.opts.seed),
        server.pid(),
        timeout,
    )
    .await
    .map_err(|e| format!("{e}\n{}", server.log_tail()))?;
    server.stop();
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    // The message, not the field: the log may carry colour codes between key and value.
    if !text.contains("streaming it from the database") {
        return Err(format!(
            "the job did not stream its dataset (see {})",
            log.display()
        ));
    }
    Ok(StreamRun {
        rows: set.rows.unwrap_or(0),
        budget,
        job,
    })
}

/// Table rows: peak RSS against 600 MB, time per row against the in-memory W1.
pub fn rows(r: &Results, in_memory_rows: usize) -> Vec<Row> {
    let Some(st) = &r.stream else {
        return Vec::new();
    };
    let mib = |b: u64| b as f64 / (1u64 << 20) as f64;
    let label = format!("{}k rows, {} MiB budget", st.rows / 1000, st.budget >> 20);
    let peak = st.job.server_peak_rss.map(mib);
    let ours = st.seconds_per_row();
    let memory =
        r.w1.as_ref()
            .and_then(JobRun::median_epoch)
            .map(|s| s / in_memory_rows as f64);
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
