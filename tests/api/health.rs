use reqwest::StatusCode;

use crate::helpers::{assert_problem, spawn_app};

#[tokio::test]
async fn health_and_readiness_answer() {
    let app = spawn_app().await;
    assert_eq!(app.get_json("/healthz").await["status"], "ok");
    assert_eq!(app.get_json("/readyz").await["status"], "ok");
}

#[tokio::test]
async fn bad_ids_and_unknown_resources_are_problems() {
    let app = spawn_app().await;
    assert_problem(
        app.get("/datasets/not-a-uuid").await,
        StatusCode::BAD_REQUEST,
        &["UUID"],
    )
    .await;
    let missing = "/datasets/00000000-0000-4000-8000-000000000000";
    assert_problem(
        app.get(missing).await,
        StatusCode::NOT_FOUND,
        &["not found"],
    )
    .await;
}
