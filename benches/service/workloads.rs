//! W1 and W2 through the service: CSV upload, training job, polling, metrics.

use crate::api::{self, Epoch};
use crate::client::Conn;
use crate::server::rss;
use bytes::Bytes;
use hyper::{Method, StatusCode};
use serde_json::Value;
use std::path::Path;
use std::time::{Duration, Instant};

pub struct Upload {
    pub dataset_id: String,
    pub bytes: u64,
    pub seconds: f64,
}

impl Upload {
    pub fn mb_per_s(&self) -> f64 {
        self.bytes as f64 / 1e6 / self.seconds
    }
}

/// Posts the CSV file as one body; the clock runs from the request to the `201`.
pub async fn upload(
    conn: &mut Conn,
    csv: &Path,
    name: &str,
    target: &str,
) -> Result<Upload, String> {
    let body = Bytes::from(std::fs::read(csv).map_err(|e| format!("{}: {e}", csv.display()))?);
    let bytes = body.len() as u64;
    let start = Instant::now();
    let reply = conn
        .request(
            Method::POST,
            &api::dataset_upload(name, target),
            Some("text/csv"),
            body,
        )
        .await?;
    let seconds = start.elapsed().as_secs_f64();
    let v = reply.expect(&format!("upload {}", csv.display()), StatusCode::CREATED)?;
    Ok(Upload {
        dataset_id: api::field_str(&v, api::ID)?,
        bytes,
        seconds,
    })
}

/// A dataset a previous run stored under `name` (for `--skip upload` with `--db`).
pub async fn find_dataset(conn: &mut Conn, name: &str) -> Result<String, String> {
    let v = conn
        .get(api::DATASETS)
        .await?
        .expect("list datasets", StatusCode::OK)?;
    api::dataset_list(&v)
        .iter()
        .find(|d| d.get(api::DATASET_NAME).and_then(Value::as_str) == Some(name))
        .map(|d| api::field_str(d, api::ID))
        .transpose()?
        .ok_or_else(|| {
            format!("no dataset named {name:?} in the database; run once without --skip upload")
        })
}

pub struct JobRun {
    pub model_id: String,
    pub epochs: Vec<Epoch>,
    pub wall_seconds: f64,
    /// VmHWM of the server after the job: the peak since the server started.
    pub server_peak_rss: Option<u64>,
    /// The largest VmRSS seen while polling during the job.
    pub server_max_sampled_rss: Option<u64>,
}

impl JobRun {
    pub fn first_epoch(&self) -> Option<f64> {
        self.epochs.first().map(|e| e.seconds)
    }

    /// Median of epochs 2..N, as the anchors report it (epoch 1 alone when there is only one).
    pub fn median_epoch(&self) -> Option<f64> {
        let rest = if self.epochs.len() > 1 {
            &self.epochs[1..]
        } else {
            &self.epochs[..]
        };
        let mut s: Vec<f64> = rest.iter().map(|e| e.seconds).collect();
        s.sort_by(f64::total_cmp);
        match s.len() {
            0 => None,
            n if n % 2 == 1 => Some(s[n / 2]),
            n => Some((s[n / 2 - 1] + s[n / 2]) / 2.0),
        }
    }

    pub fn last(&self) -> Option<&Epoch> {
        self.epochs.last()
    }
}

pub async fn train(
    conn: &mut Conn,
    spec: &Value,
    server_pid: u32,
    timeout: Duration,
) -> Result<JobRun, String> {
    let start = Instant::now();
    let v = conn
        .post_json(api::JOBS, spec)
        .await?
        .expect("POST /jobs", StatusCode::ACCEPTED)?;
    let id = api::field_str(&v, api::ID)?;
    let mut max_rss = None;
    let job = loop {
        if let Some((now, _)) = rss(server_pid) {
            max_rss = max_rss.max(Some(now));
        }
        let job = conn
            .get(&api::job(&id))
            .await?
            .expect("GET /jobs/{id}", StatusCode::OK)?;
        let status = job
            .get(api::JOB_STATUS)
            .and_then(Value::as_str)
            .unwrap_or_default();
        if status == api::STATUS_SUCCEEDED {
            break job;
        }
        if api::TERMINAL_FAILURES.contains(&status) {
            return Err(format!(
                "job {id} {status}: {}",
                job.get(api::JOB_ERROR).unwrap_or(&Value::Null)
            ));
        }
        if start.elapsed() > timeout {
            let _ = conn
                .request(
                    Method::POST,
                    &format!("{}/cancel", api::job(&id)),
                    None,
                    Bytes::new(),
                )
                .await;
            return Err(format!(
                "job {id} still {status} after {timeout:?}; cancelled"
            ));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let wall_seconds = start.elapsed().as_secs_f64();
    let server_peak_rss = rss(server_pid).map(|(_, hwm)| hwm);
    let metrics = conn
        .get(&api::job_metrics(&id))
        .await?
        .expect("GET /jobs/{id}/metrics", StatusCode::OK)?;
    Ok(JobRun {
        model_id: api::field_str(&job, api::JOB_MODEL_ID)?,
        epochs: api::epochs(&metrics)?,
        wall_seconds,
        server_peak_rss,
        server_max_sampled_rss: max_rss,
    })
}
