//! Prediction input errors, deletion.

use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::{assert_problem, binary_spec, spawn_app};
use crate::journey::predict;

#[tokio::test]
async fn bad_prediction_input_is_a_problem_naming_the_row() {
    let app = spawn_app().await;
    let dataset = app.linear_dataset(100, 7).await;
    let job = app.submit(&binary_spec(&dataset, 1)).await;
    let model = app.wait_finished(&job).await["model_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let path = format!("/models/{model}/predict");
    let cases = [
        (
            json!({"instances": [[1, 2, 3, 4], [1, 2, 3]]}),
            StatusCode::UNPROCESSABLE_ENTITY,
            &["instances[1]", "3 values", "expects 4"][..],
        ),
        (
            json!({"instances": [[1, 2, 3, 4, 5]]}),
            StatusCode::UNPROCESSABLE_ENTITY,
            &["instances[0]", "5 values"],
        ),
        (
            json!({"instances": [{"x0": 1, "x1": 2, "x2": 3}]}),
            StatusCode::UNPROCESSABLE_ENTITY,
            &["lacks feature \"x3\""],
        ),
        (
            json!({"instances": [{"x0": 1, "x1": 2, "x2": 3, "x3": 4, "x9": 5}]}),
            StatusCode::UNPROCESSABLE_ENTITY,
            &["unknown feature \"x9\""],
        ),
        (
            json!({"instances": []}),
            StatusCode::UNPROCESSABLE_ENTITY,
            &["empty"],
        ),
        (
            json!({"instances": [[1, 2, "3", 4]]}),
            StatusCode::UNPROCESSABLE_ENTITY,
            &["string"],
        ),
        (
            json!({"instances": [[1e39, 2, 3, 4]]}),
            StatusCode::UNPROCESSABLE_ENTITY,
            &["instances[0][0]"],
        ),
        (
            json!({"rows": [[1, 2, 3, 4]]}),
            StatusCode::UNPROCESSABLE_ENTITY,
            &["rows"],
        ),
    ];
    for (body, status, needles) in cases {
        assert_problem(app.post_json(&path, &body).await, status, needles).await;
    }
    let response = app
        .client
        .post(app.url(&path))
        .body("{\"instances\": [[1,")
        .send()
        .await
        .unwrap();
    assert_problem(response, StatusCode::BAD_REQUEST, &["EOF"]).await;
    let unknown = "/models/00000000-0000-4000-8000-000000000000/predict";
    let response = app
        .post_json(unknown, &json!({"instances": [[1, 2, 3, 4]]}))
        .await;
    assert_problem(response, StatusCode::NOT_FOUND, &["model"]).await;

    // Still serving after all that.
    let answer = predict(&app, &model, &json!({"instances": [[0.5, 0.5, -0.5, 0.0]]})).await;
    assert_eq!(answer["classes"].as_array().unwrap().len(), 1);

    let response = app
        .post_csv(
            &format!("/models/{model}/evaluate"),
            "x0,x1,x2,label\n1,2,3,0\n",
        )
        .await;
    assert_problem(response, StatusCode::UNPROCESSABLE_ENTITY, &["x3"]).await;

    assert_eq!(
        app.delete(&format!("/models/{model}")).await.status(),
        StatusCode::NO_CONTENT
    );
    let response = app
        .post_json(&path, &json!({"instances": [[1, 2, 3, 4]]}))
        .await;
    assert_problem(response, StatusCode::NOT_FOUND, &["model"]).await;
    assert_problem(
        app.get(&format!("/models/{model}")).await,
        StatusCode::NOT_FOUND,
        &["model"],
    )
    .await;
}
