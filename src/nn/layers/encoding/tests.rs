//! Encodings worked by hand on a few rows, fitted through the same plans a job makes.

use std::collections::BTreeMap;

use super::spec::{plan, ColumnOptions, CrossSpec, FeatureSpec, MAX_TOKENS};
use super::*;
use crate::nn::data::Column;

fn column(name: &str, kind: ColumnKind) -> Column {
    Column {
        name: name.into(),
        kind,
        has_missing: false,
    }
}

fn category(name: &str, levels: &[&str]) -> Column {
    column(
        name,
        ColumnKind::Category {
            levels: levels.iter().map(|l| l.to_string()).collect(),
        },
    )
}

/// Fits `columns` on `rows` with the job's `features` (JSON) and `crosses`.
fn fit_with(
    columns: &[Column],
    features: serde_json::Value,
    crosses: &[CrossSpec],
    rows: &[Vec<f32>],
) -> Encoding {
    let features: BTreeMap<String, FeatureSpec> = serde_json::from_value(features).unwrap();
    let options = ColumnOptions {
        features: &features,
        crosses,
        exclude: &[],
    };
    let (plans, crosses) = plan(columns, &options).unwrap();
    let mut fit = EncodingFit::new(columns, &plans, &crosses, None);
    fit.add_rows(rows.iter().map(|r| &r[..]));
    let encoding = fit.finish();
    let json = serde_json::to_string(&encoding).unwrap();
    let back = serde_json::from_str::<Encoding>(&json)
        .unwrap()
        .restored()
        .unwrap();
    assert_eq!(back, encoding, "survives the model file");
    encoding
}

fn encode(encoding: &Encoding, row: &[f32]) -> Vec<f32> {
    let mut out = vec![f32::NAN; encoding.width()];
    encoding.forward_row(row, &mut out);
    out
}

fn columns() -> Vec<Column> {
    vec![
        column("age", ColumnKind::Number),
        category("plan", &["basic", "pro", "gold"]),
        column("id", ColumnKind::Identifier { levels: Vec::new() }),
    ]
}

/// Worked by hand: ages 10, 30 and one missing → mean 20, population std 10; plans
/// pro ×2, basic ×1, gold never in training.
#[test]
fn fitted_on_the_given_rows_and_applied_to_cells() {
    let rows = [
        [10.0, cell::level(1), cell::level(0)],
        [30.0, cell::level(1), cell::level(1)],
        [cell::MISSING, cell::level(0), cell::level(2)],
    ];
    let rows: Vec<Vec<f32>> = rows.iter().map(|r| r.to_vec()).collect();
    let enc = fit_with(&columns(), serde_json::json!({}), &[], &rows);
    // age + indicator, OOV + pro + basic, nothing for the id.
    assert_eq!(enc.width(), 5);
    let encode = |row: [f32; 3]| {
        let mut out = vec![f32::NAN; 5];
        enc.forward_row(&row, &mut out);
        out
    };
    assert_eq!(
        encode([40.0, cell::level(1), 0.0]),
        [2.0, 0.0, 0.0, 1.0, 0.0]
    );
    assert_eq!(
        encode([cell::MISSING, cell::level(0), 0.0]),
        [0.0, 1.0, 0.0, 0.0, 1.0]
    );
    // A level of the vocabulary never seen in training, a text first seen now, and an
    // empty cell (none in training): all out of vocabulary.
    for plan in [cell::level(2), cell::UNSEEN, cell::MISSING] {
        assert_eq!(encode([20.0, plan, 0.0]), [0.0, 0.0, 1.0, 0.0, 0.0]);
    }
}

#[test]
fn only_the_most_frequent_levels_are_kept_and_numbers_are_levels_by_value() {
    let levels: Vec<String> = (0..150).map(|i| format!("l{i}")).collect();
    let column = column("c", ColumnKind::Category { levels });
    // Level i appears i + 1 times; the number 3 appears 1000 times.
    let mut rows: Vec<Vec<f32>> = (0..150u32)
        .flat_map(|i| std::iter::repeat_n(vec![cell::level(i)], i as usize + 1))
        .collect();
    rows.extend(std::iter::repeat_n(vec![3.0], 1000));
    let enc = fit_with(&[column], serde_json::json!({}), &[], &rows);
    let How::OneHot { kept, .. } = &enc.columns[0].how else {
        panic!()
    };
    assert_eq!(kept.len(), MAX_TOKENS);
    assert_eq!((kept[0].as_str(), kept[1].as_str()), ("3", "l149"));
    assert_eq!(kept.last().map(String::as_str), Some("l51"));
    let mut out = vec![f32::NAN; enc.width()];
    enc.forward_row(&[3.0], &mut out);
    assert_eq!(
        (out[1], out.iter().sum::<f32>()),
        (1.0, 1.0),
        "3 is the top level"
    );
    let cell_of = |text| enc.cell_of(0, RawValue::Text(text)).map(f32::to_bits);
    assert_eq!(cell_of("3"), Ok(3.0f32.to_bits()));
    assert_eq!(cell_of("l7"), Ok(cell::level(7).to_bits()));
    assert_eq!(cell_of("new"), Ok(cell::UNSEEN.to_bits()));
    assert_eq!(cell_of("NA"), Ok(cell::MISSING.to_bits()));
}

/// Numbers 1, 2, 3, 4, 10 and one missing: mean 4, median 3, every value once (the mode
/// is the smallest, 1), the 1/2 quantile at rank 5·1/2 = 2 of the sorted values: 3.
#[test]
fn numeric_feature_types_follow_their_options() {
    let columns: Vec<Column> = ["raw", "rescaled", "quantiles", "bounded"]
        .iter()
        .map(|n| column(n, ColumnKind::Number))
        .collect();
    let rows: Vec<Vec<f32>> = [1.0, 2.0, 3.0, 4.0, 10.0, cell::MISSING]
        .iter()
        .map(|&v| vec![v; 4])
        .collect();
    let enc = fit_with(
        &columns,
        serde_json::json!({
            "raw": "float",
            "rescaled": {"type": "float_rescaled", "scale": 0.5, "offset": 1,
                         "missing": "median", "missing_indicator": false},
            "quantiles": {"type": "float_discretized", "num_bins": 2, "missing": {"constant": 0}},
            "bounded": {"type": "float_discretized", "bin_boundaries": [0, 5],
                        "missing": "most_frequent"},
        }),
        &[],
        &rows,
    );
    // raw + indicator, rescaled, 2 bins + indicator, 3 bins + indicator.
    assert_eq!(enc.width(), 2 + 1 + 3 + 4);
    assert_eq!(
        encode(&enc, &[10.0; 4]),
        [10.0, 0.0, 6.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0, 0.0]
    );
    assert_eq!(
        encode(&enc, &[2.0, 2.0, 2.0, -1.0]),
        [2.0, 0.0, 2.0, 1.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0]
    );
    // Missing: the mean 4 raw; the median 3 rescaled to 2.5; the constant 0 in bin 0; the
    // mode 1 in bin 1 (between the boundaries 0 and 5).
    assert_eq!(
        encode(&enc, &[cell::MISSING; 4]),
        [4.0, 1.0, 2.5, 1.0, 0.0, 1.0, 0.0, 1.0, 0.0, 1.0]
    );
    let How::Discretize { boundaries, .. } = &enc.columns[2].how else {
        panic!("{:?}", enc.columns[2].how)
    };
    assert_eq!(boundaries, &[3.0]);
}

/// `city`: a ×3, b ×2, c ×1, two missing; `d` is in the vocabulary but not in these rows.
fn city_rows() -> Vec<Vec<f32>> {
    [0, 0, 0, 1, 1, 2]
        .iter()
        .map(|&code| cell::level(code))
        .chain([cell::MISSING; 2])
        .map(|c| vec![c, c])
        .collect()
}

#[test]
fn lookups_hash_what_they_do_not_keep_and_hashed_columns_hash_every_text() {
    let levels = ["a", "b", "c", "d"];
    let columns = [category("kept", &levels), category("hashed", &levels)];
    let enc = fit_with(
        &columns,
        serde_json::json!({
            "kept": {"type": "string_categorical", "max_tokens": 2, "num_oov_indices": 3,
                     "missing": "most_frequent"},
            "hashed": {"type": "string_hashed", "num_bins": 4},
        }),
        &[],
        &city_rows(),
    );
    assert_eq!(enc.width(), 3 + 2 + 4);
    let slots = |row: &[f32]| -> (usize, usize) {
        let out = encode(&enc, row);
        assert_eq!(out.iter().sum::<f32>(), 2.0, "one slot per column");
        let kept = out[..5].iter().position(|&v| v == 1.0).unwrap();
        let hashed = out[5..].iter().position(|&v| v == 1.0).unwrap();
        (kept, hashed)
    };
    let bucket3 = |t| hash::bucket(t, 3) as usize;
    let bucket4 = |t| hash::bucket(t, 4) as usize;
    // Kept levels after the three out-of-vocabulary slots; missing counts as `a`.
    assert_eq!(slots(&[cell::level(0); 2]), (3, bucket4("a")));
    assert_eq!(slots(&[cell::level(1); 2]), (4, bucket4("b")));
    assert_eq!(slots(&[cell::MISSING; 2]), (3, bucket4("")));
    for text in ["c", "d"] {
        let code = levels.iter().position(|l| *l == text).unwrap() as u32;
        assert_eq!(
            slots(&[cell::level(code); 2]),
            (bucket3(text), bucket4(text))
        );
    }
    // Text no dataset held, sent by a client, lands where its hash says.
    let cells: Vec<f32> = (0..2)
        .map(|i| enc.cell_of(i, RawValue::Text("zebra")).unwrap())
        .collect();
    assert_eq!(slots(&cells), (bucket3("zebra"), bucket4("zebra")));
    let seven = enc.cell_of(1, RawValue::Number(7.0)).unwrap();
    assert_eq!(slots(&[cell::level(0), seven]).1, bucket4("7"));
}

#[test]
fn a_cross_is_one_hot_over_the_hash_of_its_columns_slots() {
    let columns = [
        category("city", &["a", "b", "c"]),
        category("size", &["s", "m"]),
    ];
    let rows: Vec<Vec<f32>> = [(0, 0), (0, 1), (1, 0), (2, 1)]
        .iter()
        .map(|&(c, s)| vec![cell::level(c), cell::level(s)])
        .collect();
    let cross: CrossSpec = serde_json::from_value(serde_json::json!(
        {"feature_names": ["city", "size"], "crossing_dim": 5}
    ))
    .unwrap();
    let enc = fit_with(&columns, serde_json::json!({}), &[cross], &rows);
    // city: OOV + a, b, c; size: OOV + s, m; the cross.
    assert_eq!(enc.width(), 4 + 3 + 5);
    for (city, size) in [(0u32, 0u32), (1, 1), (2, 0)] {
        let out = encode(&enc, &[cell::level(city), cell::level(size)]);
        let (city_slot, size_slot) = (city + 1, size + 1);
        let bucket = hash::cross_bucket(&[city_slot, size_slot], 5) as usize;
        let mut expected = vec![0.0; 12];
        expected[city_slot as usize] = 1.0;
        expected[4 + size_slot as usize] = 1.0;
        expected[7 + bucket] = 1.0;
        assert_eq!(out, expected, "city {city}, size {size}");
    }
}
