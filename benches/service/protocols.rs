//! The `protocols` part: rows per second of one predict request of 1000 and of 100 000
//! W1-shaped rows (784 features, W1's network) through the Open Inference Protocol's binary
//! tensor extension, V2 JSON and `/predict` JSON, beside PyTorch's in-process `model(x)` on
//! the same shapes (benches/torch_predict.py, torch.set_num_threads(2)) in the same run.
//! The weights do not change a predict's cost: the model trains one epoch on a few rows.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use bytes::Bytes;
use hyper::{Method, StatusCode};
use serde_json::{json, Value};

use crate::client::Conn;
use crate::server::Server;
use crate::{api, data, workloads, Setup};

const FEATURES: usize = 784;
const SIZES: [usize; 2] = [1_000, 100_000];
const HEADER_LENGTH: &str = "inference-header-content-length";
/// W1's outputs: ten class probabilities.
const OUTPUTS: usize = 10;

/// One path's figure at one size: the median seconds of a request.
pub struct Figure {
    pub path: &'static str,
    pub rows: usize,
    pub seconds: f64,
}

/// Values exact in f32 and short in JSON (k/16), so every path reads the same cells.
fn values(rows: usize) -> Vec<f32> {
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    (0..rows * FEATURES)
        .map(|_| {
            state ^= state >> 12;
            state ^= state << 25;
            state ^= state >> 27;
            (state.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 59) as f32 / 16.0
        })
        .collect()
}

fn training_csv(rows: usize) -> Vec<u8> {
    let x = values(rows);
    let mut csv: String = (0..FEATURES).map(|i| format!("x{i},")).collect();
    csv.push_str("label\n");
    for (r, row) in x.chunks(FEATURES).enumerate() {
        for v in row {
            csv.push_str(&format!("{v},"));
        }
        csv.push_str(&format!("{}\n", r % 10));
    }
    csv.into_bytes()
}

fn json_rows(x: &[f32]) -> String {
    serde_json::to_string(&x.chunks(FEATURES).collect::<Vec<_>>()).expect("numbers serialize")
}

/// One path's request of one size.
struct Call {
    path: &'static str,
    url: String,
    headers: Vec<(&'static str, String)>,
    body: Bytes,
}

/// The requests of one size.
fn requests(model: &str, rows: usize) -> Vec<Call> {
    let x = values(rows);
    let v2 = format!("/v2/models/{model}/infer");
    let binary_header = serde_json::to_vec(&json!({
        "inputs": [{"name": "input", "shape": [rows, FEATURES], "datatype": "FP32",
            "parameters": {"binary_data_size": x.len() * 4}}],
        "outputs": [{"name": "probabilities", "parameters": {"binary_data": true}}],
    }))
    .expect("the header serializes");
    let mut binary = binary_header.clone();
    binary.extend(x.iter().flat_map(|v| v.to_le_bytes()));
    let rows_json = json_rows(&x);
    let v2_json = format!(
        r#"{{"inputs": [{{"name": "input", "shape": [{rows}, {FEATURES}], "datatype": "FP32", "data": {rows_json}}}],
            "outputs": [{{"name": "probabilities"}}]}}"#
    );
    let predict = format!(r#"{{"instances": {rows_json}}}"#);
    vec![
        Call {
            path: "V2 binary",
            url: v2.clone(),
            headers: vec![(HEADER_LENGTH, binary_header.len().to_string())],
            body: Bytes::from(binary),
        },
        Call {
            path: "V2 JSON",
            url: v2,
            headers: Vec::new(),
            body: Bytes::from(v2_json),
        },
        Call {
            path: "/predict JSON",
            url: api::predict(model),
            headers: Vec::new(),
            body: Bytes::from(predict),
        },
    ]
}

/// Median seconds of `repeats` requests (after one warm-up); each must answer `rows` rows
/// of probabilities.
async fn time(c: &mut Conn, call: &Call, rows: usize, repeats: usize) -> Result<f64, String> {
    let mut seconds = Vec::with_capacity(repeats);
    for i in 0..=repeats {
        let start = Instant::now();
        let reply = c
            .request_with(
                Method::POST,
                &call.url,
                Some("application/json"),
                &call.headers,
                call.body.clone(),
            )
            .await?;
        let elapsed = start.elapsed().as_secs_f64();
        if reply.status != StatusCode::OK {
            return Err(format!("{}: {} {}", call.url, reply.status, reply.text()));
        }
        if i == 0 {
            check(&reply, rows).map_err(|e| format!("{}: {e}", call.path))?;
        } else {
            seconds.push(elapsed);
        }
    }
    seconds.sort_by(f64::total_cmp);
    Ok(seconds[seconds.len() / 2])
}

/// The answer holds `rows` rows of probabilities: in binary after the JSON header, or in it.
fn check(reply: &crate::client::Reply, rows: usize) -> Result<(), String> {
    let values = match reply.headers.get(HEADER_LENGTH) {
        Some(length) => {
            let length: usize = length
                .to_str()
                .ok()
                .and_then(|l| l.parse().ok())
                .ok_or("a bad Inference-Header-Content-Length")?;
            (reply.body.len() - length) / 4
        }
        None => {
            let answer = reply.json()?;
            let data = answer["outputs"][0]["data"].as_array().map(Vec::len);
            data.or_else(|| answer["predictions"].as_array().map(|p| p.len() * OUTPUTS))
                .unwrap_or(0)
        }
    };
    match values == rows * OUTPUTS {
        true => Ok(()),
        false => Err(format!(
            "{values} values answered, not {rows} rows of {OUTPUTS}"
        )),
    }
}

pub async fn run(s: &Setup, bin: &Path, dir: &Path) -> Result<Vec<Figure>, String> {
    let server = Server::start_with(
        bin,
        &dir.join("protocols.db"),
        s.out.join("server-protocols.log"),
        &["--max-body-bytes".into(), (2u64 << 30).to_string()],
    )
    .await?;
    let mut c = Conn::open(server.addr).await?;
    let reply = c
        .request(
            Method::POST,
            &api::dataset_upload("bench-protocols", "label"),
            Some("text/csv"),
            Bytes::from(training_csv(2_000)),
        )
        .await?;
    let dataset = api::field_str(&reply.expect("upload", StatusCode::CREATED)?, api::ID)?;
    let mut job = api::w1_job(&dataset, 1, s.opts.seed);
    job["name"] = json!("bench-protocols");
    let timeout = Duration::from_secs(60 * s.opts.job_minutes);
    workloads::train(&mut c, &job, server.pid(), timeout).await?;
    let mut figures = Vec::new();
    for rows in SIZES {
        let repeats = if rows > 10_000 { 3 } else { 20 };
        for call in requests("bench-protocols", rows) {
            eprintln!("protocols: {}, {rows} rows ...", call.path);
            let seconds = time(&mut c, &call, rows, repeats)
                .await
                .map_err(|e| format!("{e}\n{}", server.log_tail()))?;
            figures.push(Figure {
                path: call.path,
                rows,
                seconds,
            });
        }
    }
    server.stop();
    figures.extend(torch(s)?);
    Ok(figures)
}

/// PyTorch's `model(x)` in process on the same shapes, when torch is importable.
fn torch(s: &Setup) -> Result<Vec<Figure>, String> {
    if !data::importable(&s.python, "torch, numpy") {
        eprintln!(
            "protocols: torch is not importable by {}: no PyTorch figures (python3 -m venv \
             .venv-bench && .venv-bench/bin/pip install numpy torch, or set NNSERVE_BENCH_PYTHON)",
            s.python.display()
        );
        return Ok(Vec::new());
    }
    let script = s.root.join("benches/torch_predict.py");
    let sizes: Vec<String> = SIZES.iter().map(usize::to_string).collect();
    let output = Command::new(&s.python)
        .arg(&script)
        .arg("--rows")
        .arg(sizes.join(","))
        .output()
        .map_err(|e| format!("{}: {e}", script.display()))?;
    if !output.status.success() {
        return Err(format!(
            "{}: {}",
            script.display(),
            String::from_utf8_lossy(&output.stderr)
        ));
    }
    let answer: Value = serde_json::from_slice(&output.stdout)
        .map_err(|e| format!("{}: not JSON ({e})", script.display()))?;
    Ok(SIZES
        .iter()
        .filter_map(|&rows| {
            let seconds = answer[rows.to_string()].as_f64()?;
            Some(Figure {
                path: "PyTorch model(x), in process",
                rows,
                seconds,
            })
        })
        .collect())
}

/// The figures as a table, each size's rows per second against PyTorch's.
pub fn report(figures: &[Figure]) -> String {
    let mut out = String::from(
        "| rows | path | median s | rows/s | vs PyTorch |\n|---:|---|---:|---:|---:|\n",
    );
    for f in figures {
        let torch = figures
            .iter()
            .find(|t| t.rows == f.rows && t.path.starts_with("PyTorch"));
        let ratio = torch.map_or("-".into(), |t| format!("{:.2}×", t.seconds / f.seconds));
        out.push_str(&format!(
            "| {} | {} | {:.4} | {:.0} | {ratio} |\n",
            f.rows,
            f.path,
            f.seconds,
            f.rows as f64 / f.seconds
        ));
    }
    out.push_str("vs PyTorch: PyTorch's seconds / this path's (above 1: more rows per second than PyTorch's direct call).");
    out
}
