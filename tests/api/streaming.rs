//! Datasets larger than `--dataset-memory-bytes`: trained by streaming chunks from the
//! database, through the real server.

use serde_json::{json, Value};

use crate::helpers::{binary_spec, spawn_with, Options, TestApp};

/// 4000 rows of 5 f32 values are 80 000 bytes: over this budget, so they stream.
const TINY_BUDGET: usize = 65_536;

/// Stored chunks of 16 KiB: the datasets here span several, so a streamed epoch reads
/// chunk after chunk from SQLite.
const CHUNK_BYTES: usize = 16 << 10;

fn options(budget: Option<usize>) -> Options {
    Options {
        workers: Some(1),
        dataset_memory_bytes: budget,
        ..Options::with(|c| c.dataset_chunk_bytes = CHUNK_BYTES)
    }
}

/// Chunks stored for a dataset, straight from the database.
async fn chunks(app: &TestApp, dataset: &str) -> i64 {
    let sql = "SELECT COUNT(*) FROM dataset_chunks WHERE dataset_id = $1";
    app.db.number(sql, &[dataset]).await.unwrap_or(0)
}

/// Every epoch's record without its wall time.
async fn records(app: &TestApp, job: &str) -> Vec<Value> {
    let metrics = app.get_json(&format!("/jobs/{job}/metrics")).await;
    metrics["epochs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            let mut r = r.clone();
            r.as_object_mut().unwrap().remove("seconds");
            r
        })
        .collect()
}

/// Trains to the end; the records, and how the job read its rows.
async fn train(app: &TestApp, spec: &Value) -> (Vec<Value>, Value) {
    let job = app.submit(spec).await;
    let finished = app.wait_finished(&job).await;
    assert_eq!(finished["status"], "succeeded", "{finished}");
    (records(app, &job).await, finished["data_path"].clone())
}

#[tokio::test]
async fn a_dataset_over_the_budget_streams_learns_and_repeats() {
    let streamed = spawn_with(options(Some(TINY_BUDGET))).await;
    let in_memory = spawn_with(options(None)).await;
    let spec = |dataset: &str| binary_spec(dataset, 8);
    let a = streamed.linear_dataset(4000, 21).await;
    let b = in_memory.linear_dataset(4000, 21).await;

    // 80 000 bytes of rows in five chunks.
    assert_eq!(chunks(&streamed, &a).await, 5);
    let (first, path) = train(&streamed, &spec(&a)).await;
    assert_eq!(path, "streamed");
    let (second, _) = train(&streamed, &spec(&a)).await;
    assert_eq!(first, second, "same seed, same records");
    let (reference, path) = train(&in_memory, &spec(&b)).await;
    assert_eq!(path, "memory");
    // The in-memory path is bit-identical between servers; the streamed one draws rows
    // through a shuffle buffer, so its losses differ from the first epoch on.
    assert_ne!(first[0]["loss"], reference[0]["loss"]);

    let last = |r: &[Value], key: &str| r.last().unwrap()[key].as_f64().unwrap();
    let (acc, ref_acc) = (
        last(&first, "val_accuracy"),
        last(&reference, "val_accuracy"),
    );
    assert!(acc > 0.95, "streamed val_accuracy {acc}");
    assert!((acc - ref_acc).abs() < 0.02, "{acc} vs in memory {ref_acc}");
    let (loss, ref_loss) = (last(&first, "val_loss"), last(&reference, "val_loss"));
    assert!(
        (loss - ref_loss).abs() < 0.05,
        "{loss} vs in memory {ref_loss}"
    );
}

/// A streamed job stopped by a shutdown resumes from its checkpoint and ends exactly as an
/// uninterrupted streamed run.
#[tokio::test]
async fn an_interrupted_streamed_job_resumes_bit_identically() {
    // 2000 rows are 40 000 bytes.
    let budget = Some(32_768);
    let app = spawn_with(options(budget)).await;
    let dataset = app.linear_dataset(2000, 8).await;
    let mut spec = binary_spec(&dataset, 40);
    spec["model"]["layers"][1]["units"] = json!(256);
    spec["model"]["layers"][3]["units"] = json!(256);
    spec["batch_size"] = json!(16);
    assert_eq!(chunks(&app, &dataset).await, 3);
    let (control, path) = train(&app, &spec).await;
    assert_eq!(path, "streamed");

    let interrupted = app.submit(&spec).await;
    app.wait_job(&interrupted, |job| job["epoch"].as_u64().unwrap() >= 2)
        .await;
    let stopped = app.stop().await;
    let (status, done) = stopped.job_progress(&interrupted).await;
    assert_eq!(status, "queued");
    assert!(
        (2..40).contains(&done),
        "stopped mid-way, after {done} epochs"
    );
    let app = stopped.start(options(budget)).await;
    let job = app.wait_finished(&interrupted).await;
    assert_eq!(job["status"], "succeeded", "{job}");
    assert_eq!(records(&app, &interrupted).await, control);
}
