use crate::helpers::spawn_app;

const COMMITTED: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/openapi/openapi.json");

/// Regenerate with `cargo run -- openapi > openapi/openapi.json` or by running this test with
/// `UPDATE_OPENAPI=1`.
#[test]
fn committed_document_matches_the_code() {
    let generated = nnserve::http::openapi_json();
    if std::env::var_os("UPDATE_OPENAPI").is_some() {
        std::fs::write(COMMITTED, &generated).expect("write openapi/openapi.json");
    }
    let committed = std::fs::read_to_string(COMMITTED).unwrap_or_default();
    assert!(
        committed == generated,
        "openapi/openapi.json differs from the code: regenerate it with \
         `cargo run -- openapi > openapi/openapi.json`"
    );
}

#[tokio::test]
async fn served_document_is_the_generated_one() {
    let app = spawn_app().await;
    let served = app.get("/openapi.json").await.text().await.unwrap();
    assert_eq!(served, nnserve::http::openapi_json());
    let document: serde_json::Value = serde_json::from_str(&served).unwrap();
    assert!(document["openapi"].as_str().unwrap().starts_with("3.1"));
    for path in [
        "/datasets",
        "/datasets/{id}",
        "/healthz",
        "/readyz",
        "/openapi.json",
        "/jobs",
        "/jobs/{id}/metrics",
        "/models/{ref}/predict",
        "/models/{name}/versions/{version}/predict",
    ] {
        assert!(document["paths"].get(path).is_some(), "{path} documented");
    }
}
