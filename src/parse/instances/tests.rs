use std::collections::HashMap;

use proptest::prelude::*;

use super::{parse_tf_serving, parse_with, Form, InstancesError};

fn features(width: usize) -> (Vec<String>, HashMap<String, usize>) {
    let names: Vec<String> = (0..width).map(|i| format!("x{i}")).collect();
    let index = names
        .iter()
        .cloned()
        .enumerate()
        .map(|(i, n)| (n, i))
        .collect();
    (names, index)
}

fn tf(body: &str, width: usize) -> Result<(Vec<f32>, Form), String> {
    let (names, index) = features(width);
    parse_tf_serving(body.as_bytes(), &names, &index, |part, _| part.values)
        .map(|(parts, form)| (parts.concat(), form))
        .map_err(|e| match e {
            InstancesError::Malformed(text) | InstancesError::Invalid(text) => text,
        })
}

fn rows_json(rows: &[Vec<f32>]) -> String {
    serde_json::to_string(rows).unwrap()
}

fn columns_json(rows: &[Vec<f32>], width: usize) -> String {
    let columns: serde_json::Map<String, serde_json::Value> = (0..width)
        .map(|c| {
            let column: Vec<f32> = rows.iter().map(|row| row[c]).collect();
            (format!("x{c}"), serde_json::json!(column))
        })
        .collect();
    serde_json::to_string(&columns).unwrap()
}

fn table() -> impl Strategy<Value = (usize, Vec<Vec<f32>>)> {
    (1usize..6).prop_flat_map(|width| {
        let row = prop::collection::vec(-1e6f32..1e6, width);
        (Just(width), prop::collection::vec(row, 1..20))
    })
}

proptest! {
    #[test]
    fn every_form_reads_the_same_rows((width, rows) in table()) {
        let flat: Vec<f32> = rows.concat();
        let instances = format!(r#"{{"signature_name": "serving_default", "instances": {}}}"#, rows_json(&rows));
        let tensor = format!(r#"{{"inputs": {}}}"#, rows_json(&rows));
        let columns = format!(r#"{{"inputs": {}, "signature_name": ""}}"#, columns_json(&rows, width));
        prop_assert_eq!(tf(&instances, width), Ok((flat.clone(), Form::Instances)));
        prop_assert_eq!(tf(&tensor, width), Ok((flat.clone(), Form::Inputs)));
        prop_assert_eq!(tf(&columns, width), Ok((flat, Form::Inputs)));
    }

    #[test]
    fn both_keys_are_refused((width, rows) in table(), inputs_first in any::<bool>()) {
        let (a, b) = if inputs_first { ("inputs", "instances") } else { ("instances", "inputs") };
        let body = format!(r#"{{"{a}": {0}, "{b}": {0}}}"#, rows_json(&rows));
        let err = tf(&body, width).unwrap_err();
        prop_assert!(err.contains("both"), "{}", err);
    }
}

#[test]
fn columns_of_unequal_length_or_missing_a_feature_are_refused() {
    let err = tf(r#"{"inputs": {"x0": [1, 2], "x1": [3]}}"#, 2).unwrap_err();
    assert!(err.contains("x1 has 1 values"), "{err}");
    let err = tf(r#"{"inputs": {"x0": [1, 2]}}"#, 2).unwrap_err();
    assert!(err.contains("lacks feature \"x1\""), "{err}");
    let err = tf(r#"{"inputs": {"x0": [1], "x0": [2], "x1": [3]}}"#, 2).unwrap_err();
    assert!(err.contains("twice"), "{err}");
    let err = tf(r#"{"inputs": {"x0": [], "x1": []}}"#, 2).unwrap_err();
    assert_eq!(err, "inputs is empty");
}

#[test]
fn predict_bodies_still_take_only_instances() {
    let (names, index) = features(1);
    let refused = parse_with(br#"{"inputs": [[1]]}"#, &names, &index, |part, _| part.rows);
    assert!(matches!(refused, Err(InstancesError::Invalid(text)) if text.contains("\"inputs\"")));
}
