//! Streaming CSV parser: header line, then one number per field.

use std::collections::HashMap;
use std::io::Read;

use super::records::for_each_record;
use super::{excerpt, Chunk, Chunker, IngestError};
use crate::store::Table;

#[derive(Debug, Clone, Default)]
pub struct CsvOptions {
    /// Target column names; empty means the last column.
    pub targets: Vec<String>,
    /// When set, the feature columns must be exactly these (in any order) and are stored in
    /// this order, e.g. to evaluate a model on a CSV whose columns were reordered.
    pub feature_order: Option<Vec<String>>,
}

/// Parses CSV from `reader`, handing rows to `emit` in chunks as they are parsed.
pub fn parse_csv<R: Read + Send>(
    reader: R,
    options: &CsvOptions,
    emit: impl FnMut(Chunk) -> Result<(), IngestError>,
) -> Result<Table, IngestError> {
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .flexible(true)
        .buffer_capacity(1 << 16)
        .from_reader(reader);
    let columns: Vec<String> = reader
        .headers()
        .map_err(|e| IngestError::Csv(e.to_string()))?
        .iter()
        .map(|name| name.trim().to_owned())
        .collect();
    let layout = Layout::new(columns, options)?;
    let mut chunker = Chunker::new(layout.features.len(), layout.targets.len(), emit);
    let mut row = vec![0f32; layout.columns.len()];
    for_each_record(reader, |record| {
        let line = record.position().map_or(0, |p| p.line());
        if record.len() != layout.columns.len() {
            return Err(IngestError::Ragged {
                line,
                expected: layout.columns.len(),
                got: record.len(),
            });
        }
        for (column, field) in record.iter().enumerate() {
            row[layout.slot[column]] = parse_value(field).map_err(|fault| {
                let name = layout.columns[column].clone();
                let value = excerpt(field);
                let column = column + 1;
                match fault {
                    Fault::NotANumber => IngestError::NotANumber {
                        line,
                        column,
                        name,
                        value,
                    },
                    Fault::NotFinite => IngestError::NotFinite {
                        line,
                        column,
                        name,
                        value,
                    },
                }
            })?;
        }
        chunker.push(&row)
    })?;
    let chunk_rows = chunker.chunk_rows();
    let (rows, target_stats) = chunker.finish()?;
    Ok(Table {
        rows,
        feature_names: layout.names(&layout.features),
        target_names: layout.names(&layout.targets),
        columns: layout.columns,
        target_stats,
        chunk_rows,
    })
}

/// Where each CSV column goes in a stored row (features first, then targets).
struct Layout {
    columns: Vec<String>,
    features: Vec<usize>,
    targets: Vec<usize>,
    slot: Vec<usize>,
}

impl Layout {
    fn new(columns: Vec<String>, options: &CsvOptions) -> Result<Self, IngestError> {
        if columns.is_empty() || columns == [""] {
            return Err(IngestError::Empty);
        }
        let mut index = HashMap::new();
        for (i, name) in columns.iter().enumerate() {
            if name.is_empty() {
                return Err(IngestError::EmptyColumnName { column: i + 1 });
            }
            if let Some(first) = index.insert(name.as_str(), i) {
                return Err(IngestError::DuplicateColumn {
                    name: name.clone(),
                    first: first + 1,
                    second: i + 1,
                });
            }
        }
        if columns
            .iter()
            .all(|name| parse_value(name.as_bytes()).is_ok())
        {
            return Err(IngestError::HeaderIsNumeric);
        }
        let mut targets = Vec::new();
        for name in &options.targets {
            let &i = index
                .get(name.as_str())
                .ok_or_else(|| IngestError::UnknownTarget {
                    name: name.clone(),
                    columns: columns.clone(),
                })?;
            if targets.contains(&i) {
                return Err(IngestError::DuplicateTarget(name.clone()));
            }
            targets.push(i);
        }
        if targets.is_empty() {
            targets.push(columns.len() - 1);
        }
        let mut features: Vec<usize> = (0..columns.len())
            .filter(|i| !targets.contains(i))
            .collect();
        if features.is_empty() {
            return Err(IngestError::NoFeatures);
        }
        if let Some(order) = &options.feature_order {
            let present: Vec<&str> = features.iter().map(|&i| columns[i].as_str()).collect();
            let mut wanted: Vec<&str> = order.iter().map(String::as_str).collect();
            let mut sorted = present.clone();
            sorted.sort_unstable();
            wanted.sort_unstable();
            if sorted != wanted {
                return Err(IngestError::Columns(format!(
                    "the feature columns must be {order:?} (besides the targets), got {present:?}"
                )));
            }
            features = order.iter().map(|name| index[name.as_str()]).collect();
        }
        let mut slot = vec![0; columns.len()];
        for (position, &column) in features.iter().chain(&targets).enumerate() {
            slot[column] = position;
        }
        Ok(Self {
            columns,
            features,
            targets,
            slot,
        })
    }

    fn names(&self, indices: &[usize]) -> Vec<String> {
        indices.iter().map(|&i| self.columns[i].clone()).collect()
    }
}

enum Fault {
    NotANumber,
    NotFinite,
}

fn parse_value(field: &[u8]) -> Result<f32, Fault> {
    if let Some(value) = parse_plain_decimal(field) {
        return Ok(value);
    }
    let text = std::str::from_utf8(field)
        .map_err(|_| Fault::NotANumber)?
        .trim();
    let value: f32 = text.parse().map_err(|_| Fault::NotANumber)?;
    if value.is_finite() {
        Ok(value)
    } else {
        Err(Fault::NotFinite)
    }
}

/// Powers of ten that f32 holds exactly.
const POW10: [f32; 11] = [1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10];

/// Fast path for plain decimals (`-12`, `0.0625`, `3.`), which is what numeric CSVs hold
/// almost everywhere. When the digits form an integer m < 2^24 and there are k ≤ 10 of them
/// after the point, m and 10^k are exact in f32 and one correctly rounded division gives
/// the correctly rounded value of m / 10^k — the same f32 as the full parser (Clinger's
/// fast path). Anything else returns None and takes the full parser.
fn parse_plain_decimal(field: &[u8]) -> Option<f32> {
    let (negative, digits) = match field {
        [b'-', rest @ ..] => (true, rest),
        _ => (false, field),
    };
    let mut mantissa: u32 = 0;
    let mut seen_digit = false;
    let mut scale: Option<usize> = None;
    for &byte in digits {
        match byte {
            b'0'..=b'9' => {
                mantissa = mantissa * 10 + u32::from(byte - b'0');
                if mantissa >= 1 << 24 {
                    return None;
                }
                seen_digit = true;
                if let Some(k) = scale.as_mut() {
                    *k += 1;
                }
            }
            b'.' if scale.is_none() => scale = Some(0),
            _ => return None,
        }
    }
    let k = scale.unwrap_or(0);
    if !seen_digit || k >= POW10.len() {
        return None;
    }
    let value = mantissa as f32 / POW10[k];
    Some(if negative { -value } else { value })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str, targets: &[&str]) -> Result<(Table, Vec<f32>), IngestError> {
        let options = CsvOptions {
            targets: targets.iter().map(|s| s.to_string()).collect(),
            feature_order: None,
        };
        let mut values = Vec::new();
        let parsed = parse_csv(text.as_bytes(), &options, |chunk| {
            values.extend(
                chunk
                    .data
                    .chunks_exact(4)
                    .map(|b| f32::from_le_bytes(b.try_into().unwrap())),
            );
            Ok(())
        })?;
        Ok((parsed, values))
    }

    #[test]
    fn targets_move_after_features() {
        let (parsed, values) = parse("a,y,b\n1,2,3\n-4,5.5,6e1\n", &["y"]).unwrap();
        assert_eq!(parsed.feature_names, ["a", "b"]);
        assert_eq!(values, [1.0, 3.0, 2.0, -4.0, 60.0, 5.5]);
        assert_eq!(
            (parsed.target_stats[0].min, parsed.target_stats[0].max),
            (2.0, 5.5)
        );
        assert!(!parsed.target_stats[0].integral);
    }

    #[test]
    fn errors_name_line_and_column() {
        let err = parse("a,b\n1,2\n3,x\n", &[]).unwrap_err().to_string();
        assert_eq!(err, "line 3, column 2 (\"b\"): \"x\" is not a number");
        let err = parse("a,b\n1,2\n3,NaN\n", &[]).unwrap_err();
        assert!(
            matches!(
                err,
                IngestError::NotFinite {
                    line: 3,
                    column: 2,
                    ..
                }
            ),
            "{err}"
        );
        let err = parse("a,b\n1,2\n3\n", &[]).unwrap_err();
        assert!(
            matches!(
                err,
                IngestError::Ragged {
                    line: 3,
                    expected: 2,
                    got: 1
                }
            ),
            "{err}"
        );
        assert!(matches!(parse("a,b\n", &[]), Err(IngestError::NoRows)));
        assert!(matches!(
            parse("a,b\n1,2\n", &["c"]),
            Err(IngestError::UnknownTarget { .. })
        ));
        assert!(matches!(
            parse("1,2\n1,2\n", &[]),
            Err(IngestError::HeaderIsNumeric)
        ));
        assert!(matches!(
            parse("a,b\n1,1e39\n", &[]),
            Err(IngestError::NotFinite { .. })
        ));
    }

    #[test]
    fn plain_decimal_fast_path_agrees_with_the_standard_parser() {
        let mut texts: Vec<String> = [
            "0", "7", "-12", "255", "9999999", "-0", "3.", "0.1", "-0.0625", "16777215",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        // Many mantissas at every scale the fast path takes, including awkward roundings.
        let mut m: u64 = 1;
        for _ in 0..2000 {
            m = m
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let m = (m >> 40) % (1 << 24);
            for k in 0..=10usize {
                let digits = format!("{m:0>width$}", width = k + 1);
                let (int, frac) = digits.split_at(digits.len() - k);
                texts.push(format!("{int}.{frac}"));
            }
        }
        for text in &texts {
            let fast = parse_plain_decimal(text.as_bytes()).expect(text);
            assert_eq!(
                fast.to_bits(),
                text.parse::<f32>().unwrap().to_bits(),
                "{text}"
            );
        }
        for slow in [
            "16777216",
            "1e5",
            "0.00000000001",
            ".",
            "-",
            "",
            "1.2.3",
            " 1",
            "nan",
        ] {
            assert!(parse_plain_decimal(slow.as_bytes()).is_none(), "{slow}");
        }
    }
}
