//! A real Open Inference Protocol client against the real server: `tests/api/triton_client.py`
//! runs `tritonclient[http]` (pinned, in the venv `.ci/test-python` makes) for health,
//! metadata and inference with binary_data False and True, on a numeric and a mixed-type
//! model, comparing every prediction with `/predict`'s bit for bit.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::json;

use crate::helpers::{binary_spec, churn_spec, churn_table, spawn_app, test_python, TestApp};

fn python() -> Option<PathBuf> {
    test_python("tritonclient.http")
}

async fn train(app: &TestApp, mut job: serde_json::Value, name: &str) {
    job["name"] = json!(name);
    job["epochs"] = json!(3);
    let id = app.submit(&job).await;
    let done = app.wait_finished(&id).await;
    assert_eq!(done["status"], "succeeded", "{done}");
}

fn run_client(python: &Path, app: &TestApp, model: &str, kind: &str) {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/api/triton_client.py");
    let host = app.address.trim_start_matches("http://").to_owned();
    let output = Command::new(python)
        .arg(script)
        .args([host.as_str(), model, kind])
        .output()
        .expect("python starts");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "tritonclient {kind}: {stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(stdout.matches("equal /predict's").count(), 2, "{stdout}");
}

#[tokio::test]
async fn tritonclient_health_metadata_and_infer_match_predict() {
    let Some(python) = python() else { return };
    let app = spawn_app().await;
    let linear = app.linear_dataset(200, 5).await;
    train(&app, binary_spec(&linear, 3), "linear").await;
    let churn = app.upload(churn_table(300, 7), "?target=churn").await;
    train(&app, churn_spec(churn["id"].as_str().unwrap()), "churn").await;
    let (python, app) = (python, std::sync::Arc::new(app));
    let client = {
        let app = app.clone();
        tokio::task::spawn_blocking(move || {
            run_client(&python, &app, "linear", "numeric");
            run_client(&python, &app, "churn", "mixed");
        })
    };
    client.await.expect("the client ran");
}
