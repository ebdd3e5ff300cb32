//! Streaming CSV parser: header line, then one number per field.
//!
//! Bodies without quote characters (numeric CSVs nearly always) take the fast path of
//! [`super::block`] on every core; from the first quote character on, the rest goes through
//! the csv crate on one thread. Both give the same rows and the same errors.

use std::io::{Cursor, Read};

use memchr::memchr;

use super::block::{is_plain, parse_field, ParsedBlock};
use super::chunker::Sink;
use super::chunker::CHUNK_BYTES;
use super::columns::SlotStats;
pub use super::columns::DEFAULT_NA;
use super::layout::Layout;
use super::parallel::{fill, parse_plain_blocks, BLOCK};
use super::records::for_each_record;
use super::{Chunk, IngestError};
use crate::store::{ColumnType, Table};

#[derive(Debug, Clone)]
pub struct CsvOptions {
    /// Target column names; empty means the last column.
    pub targets: Vec<String>,
    /// When set, the feature columns must be exactly these (in any order) and are stored in
    /// this order, e.g. to evaluate a model on a CSV whose columns were reordered.
    pub feature_order: Option<Vec<String>>,
    /// Stored chunks hold about this many bytes of rows.
    pub chunk_bytes: usize,
    /// The fields that mean "missing"; `None`: [`DEFAULT_NA`].
    pub na_values: Option<Vec<String>>,
    /// Columns whose type is given rather than found (`zip:category`).
    pub types: Vec<(String, ColumnType)>,
}

impl Default for CsvOptions {
    fn default() -> Self {
        Self {
            targets: Vec::new(),
            feature_order: None,
            chunk_bytes: CHUNK_BYTES,
            na_values: None,
            types: Vec::new(),
        }
    }
}

/// Parses CSV from `reader`, handing rows to `emit` in chunks as they are parsed.
pub fn parse_csv<R: Read + Send>(
    mut reader: R,
    options: &CsvOptions,
    emit: impl FnMut(Chunk) -> Result<(), IngestError>,
) -> Result<Table, IngestError> {
    let mut buf = Vec::with_capacity(BLOCK + BLOCK / 4);
    let table = match header_end(&mut reader, &mut buf)? {
        Some(end) if buf[0] != b'\n' && buf[0] != b'\r' && is_plain(&buf[..end], false) => {
            let columns = header(&mut csv_reader(&buf[..end], true))?;
            let layout = Layout::new(columns, options)?;
            let mut sink = Sink::new(&layout, options.chunk_bytes, emit);
            buf.drain(..end);
            if let Some(rest) = parse_plain_blocks(&mut reader, buf, &layout, 1, &mut sink)? {
                let records = csv_reader(Cursor::new(rest.bytes).chain(reader), false);
                csv_rows(records, &layout, rest.lines_before, &mut sink)?;
            }
            sink.finish()
        }
        // A quoted or blank first line: everything through the csv crate.
        _ => {
            let mut records = csv_reader(Cursor::new(buf).chain(reader), true);
            let layout = Layout::new(header(&mut records)?, options)?;
            let mut sink = Sink::new(&layout, options.chunk_bytes, emit);
            csv_rows(records, &layout, 0, &mut sink)?;
            sink.finish()
        }
    }?;
    Ok(Table {
        na_values: options.na_values.clone(),
        ..table
    })
}

/// Reads until `buf` holds the first line; returns the index just past its newline, or
/// None when the body has none.
fn header_end<R: Read>(reader: &mut R, buf: &mut Vec<u8>) -> Result<Option<usize>, IngestError> {
    let mut searched = 0;
    loop {
        let end = fill(reader, buf, searched + BLOCK)?;
        if let Some(i) = memchr(b'\n', &buf[searched..]) {
            return Ok(Some(searched + i + 1));
        }
        if end {
            return Ok(None);
        }
        searched = buf.len();
    }
}

fn csv_reader<R: Read>(reader: R, has_headers: bool) -> csv::Reader<R> {
    csv::ReaderBuilder::new()
        .has_headers(has_headers)
        .flexible(true)
        .buffer_capacity(1 << 16)
        .from_reader(reader)
}

fn header<R: Read>(records: &mut csv::Reader<R>) -> Result<Vec<String>, IngestError> {
    Ok(records
        .headers()
        .map_err(|e| IngestError::Csv(e.to_string()))?
        .iter()
        .map(|name| name.trim().to_owned())
        .collect())
}

/// Records the csv crate path gathers before handing them on as one block.
const SLOW_BLOCK_ROWS: usize = 4096;

/// Rows through the csv crate; its line numbers count from `lines_before` + 1.
fn csv_rows<R, F>(
    records: csv::Reader<R>,
    layout: &Layout,
    lines_before: u64,
    sink: &mut Sink<'_, F>,
) -> Result<(), IngestError>
where
    R: Read + Send,
    F: FnMut(Chunk) -> Result<(), IngestError>,
{
    let width = layout.columns.len();
    let mut block = ParsedBlock::new(layout);
    for_each_record(records, |record| {
        let line = lines_before + record.position().map_or(0, |p| p.line());
        if record.len() != width {
            return Err(IngestError::Ragged {
                line,
                expected: width,
                got: record.len(),
            });
        }
        let row = block.values.len();
        block.values.resize(row + width, 0.0);
        for (column, field) in record.iter().enumerate() {
            block.values[row + layout.slot[column]] =
                parse_field(layout, &mut block.levels, column, field)
                    .map_err(|fault| layout.bad_value(line, column, field, fault))?;
        }
        if block.values.len() >= SLOW_BLOCK_ROWS * width {
            hand_on(&mut block, layout, sink)?;
        }
        Ok(())
    })?;
    hand_on(&mut block, layout, sink)
}

fn hand_on<F>(
    block: &mut ParsedBlock,
    layout: &Layout,
    sink: &mut Sink<'_, F>,
) -> Result<(), IngestError>
where
    F: FnMut(Chunk) -> Result<(), IngestError>,
{
    let mut full = std::mem::replace(block, ParsedBlock::new(layout));
    full.stats = SlotStats::of_rows(&full.values, layout.columns.len());
    sink.push(full)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::chunk_codec::cell::{self, Cell};
    use crate::store::ColumnReport;

    /// Every column typed `number` and no missing markers: the strict parse of numeric
    /// tables, whose errors name each bad field.
    fn parse(text: &str, targets: &[&str]) -> Result<(Table, Vec<f32>), IngestError> {
        let header = text.lines().next().unwrap_or_default();
        let options = CsvOptions {
            targets: targets.iter().map(|s| s.to_string()).collect(),
            types: header
                .split(',')
                .map(|name| (name.trim_matches('"').to_owned(), ColumnType::Number))
                .collect(),
            na_values: Some(Vec::new()),
            ..CsvOptions::default()
        };
        parse_with(text, &options)
    }

    fn parse_with(text: &str, options: &CsvOptions) -> Result<(Table, Vec<f32>), IngestError> {
        let mut values = Vec::new();
        let parsed = parse_csv(text.as_bytes(), options, |chunk| {
            values.extend(crate::store::chunk_codec::values(&chunk.data));
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

    fn typed(text: &str, types: &[(&str, ColumnType)]) -> (Table, Vec<f32>) {
        let options = CsvOptions {
            types: types.iter().map(|(n, t)| (n.to_string(), *t)).collect(),
            ..CsvOptions::default()
        };
        parse_with(text, &options).unwrap()
    }

    fn report<'t>(table: &'t Table, name: &str) -> &'t ColumnReport {
        table
            .column_reports
            .iter()
            .find(|r| r.name == name)
            .unwrap()
    }

    #[test]
    fn text_and_missing_cells_type_their_columns() {
        let text = "id,plan,zip,age,churn
                    a1,basic,02134,31,no
                    a2,pro,NA,,yes
                    a3,\"pro\",02134,N/A,no
                    a4,gold,10001,47.5,
";
        for (body, path) in [
            (text.replace("\"pro\"", "pro"), "fast"),
            (text.to_owned(), "csv crate"),
        ] {
            let (table, values) = typed(&body, &[("zip", ColumnType::Category)]);
            let kinds: Vec<ColumnType> = table.column_reports.iter().map(|r| r.kind).collect();
            assert_eq!(
                kinds,
                [
                    ColumnType::Identifier,
                    ColumnType::Category,
                    ColumnType::Category,
                    ColumnType::Number,
                    ColumnType::Category
                ],
                "{path}"
            );
            let plan = report(&table, "plan");
            assert_eq!(
                (plan.levels.as_slice(), plan.level_counts.as_slice()),
                (
                    &["basic".to_owned(), "pro".into(), "gold".into()][..],
                    &[1, 2, 1][..]
                )
            );
            let zip = report(&table, "zip");
            assert_eq!(
                (zip.levels.len(), zip.missing),
                (2, 1),
                "{path}: a postcode typed category keeps its text"
            );
            assert_eq!(zip.levels[0], "02134");
            let age = report(&table, "age");
            assert_eq!(
                (age.missing, age.numbers, age.min, age.max),
                (2, 2, Some(31.0), Some(47.5))
            );
            let churn = report(&table, "churn");
            assert_eq!(
                (churn.levels.as_slice(), churn.missing),
                (&["no".to_owned(), "yes".into()][..], 1)
            );
            // Row 2: pro (code 1), missing zip, missing age, label "yes" as class 1.
            let row = &values[5..10];
            assert_eq!(cell::decode(row[1]), Cell::Level(1));
            assert_eq!(cell::decode(row[2]), Cell::Missing);
            assert_eq!(cell::decode(row[3]), Cell::Missing);
            assert_eq!(row[4], 1.0, "a text label is stored as its class index");
            assert!(values[19].is_nan(), "a missing label");
            assert_eq!(
                (table.target_stats[0].min, table.target_stats[0].max),
                (0.0, 1.0)
            );
        }
    }

    #[test]
    fn typed_numbers_and_targets_refuse_what_does_not_fit() {
        let options = CsvOptions {
            types: vec![("age".into(), ColumnType::Number)],
            ..CsvOptions::default()
        };
        let err = parse_with(
            "age,y
3,1
old,0
",
            &options,
        )
        .unwrap_err()
        .to_string();
        assert_eq!(err, "line 3, column 1 (\"age\"): \"old\" is not a number");
        let err = parse_with(
            "x,y
1,yes
2,1
",
            &CsvOptions::default(),
        )
        .unwrap_err();
        assert!(
            err.to_string().contains("mixes numbers and text labels"),
            "{err}"
        );
        let err = parse_with(
            "x,y
1,inf
",
            &CsvOptions::default(),
        )
        .unwrap_err();
        assert!(matches!(err, IngestError::NotFinite { .. }), "{err}");
        let options = CsvOptions {
            types: vec![("nope".into(), ColumnType::Number)],
            ..CsvOptions::default()
        };
        let err = parse_with(
            "x,y
1,2
", &options,
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("\"nope\""), "{err}");
    }

    /// Texts interned by blocks parsed on different threads get the codes of their first
    /// appearance in the file.
    #[test]
    fn levels_across_blocks_are_coded_in_file_order() {
        let mut body = String::from("x,c,y\n");
        for r in 0..300_000 {
            let level = if r < 250_000 { "early" } else { "late" };
            let c = if r % 2 == 0 {
                level.to_owned()
            } else {
                format!("l{}", r % 3)
            };
            body.push_str(&format!("{},{c},{}\n", r % 7, r % 2));
        }
        assert!(body.len() > 2 * BLOCK);
        let (table, values) = typed(&body, &[]);
        let c = report(&table, "c");
        assert_eq!(c.levels, ["early", "l1", "l0", "l2", "late"]);
        assert_eq!(c.level_counts.iter().sum::<u64>(), 300_000);
        assert_eq!(c.level_counts[0], 125_000);
        let late = (0..300_000).step_by(2).filter(|&r| r >= 250_000).count() as u64;
        assert_eq!(c.level_counts[4], late);
        assert_eq!(cell::decode(values[3 * 299_998 + 1]), Cell::Level(4));
    }

    /// A body of several blocks: plain decimals, zeros, exponents, padded values.
    fn lines(rows: usize) -> Vec<String> {
        let mut lines = vec!["a,b,c,d,y".to_string()];
        for r in 0..rows {
            let a = if r % 3 == 0 {
                "0".into()
            } else {
                format!("0.{:04}", r % 9973)
            };
            let c = if r % 1000 == 7 {
                " 2 ".into()
            } else {
                format!("{}", r % 17)
            };
            lines.push(format!("{a},-{}.5,{c},{}e-05,{}", r % 251, r % 97, r % 10));
        }
        lines
    }

    /// The same body parsed by the fast path and, with its first column name quoted, by
    /// the csv crate alone: the outcomes must agree exactly.
    fn both_paths(lines: &[String], newline: &str) -> Result<(Table, Vec<f32>), String> {
        let plain = lines.join(newline) + newline;
        let quoted = format!("\"{plain}").replacen(',', "\",", 1);
        let fast = parse(&plain, &[]).map_err(|e| e.to_string());
        let slow = parse(&quoted, &[]).map_err(|e| e.to_string());
        match (&fast, &slow) {
            (Ok((t1, v1)), Ok((t2, v2))) => {
                assert_eq!((t1.rows, &t1.columns), (t2.rows, &t2.columns));
                assert_eq!(t1.target_stats, t2.target_stats);
                assert!(v1.iter().zip(v2).all(|(a, b)| a.to_bits() == b.to_bits()));
                assert_eq!(v1.len(), v2.len());
            }
            // The csv crate counts a record after a CRLF as starting on the line before
            // (its position is taken at the `\n`); the fast path counts the line it is on.
            (Err(e1), Err(e2)) if newline == "\n" => assert_eq!(e1, e2),
            (Err(_), Err(_)) => {}
            _ => panic!(
                "the paths disagree: {:?} vs {:?}",
                fast.map(|_| ()),
                slow.map(|_| ())
            ),
        }
        fast
    }

    #[test]
    fn plain_and_quoted_bodies_of_several_blocks_give_identical_rows() {
        let mut lines = lines(120_000);
        assert!(lines.concat().len() > 2 * BLOCK);
        let (table, values) = both_paths(&lines, "\n").unwrap();
        assert_eq!(table.rows, 120_000);
        assert_eq!(&values[5 * 7..5 * 8], [0.0007, -7.5, 2.0, 7e-5, 7.0]);
        let (_, crlf) = both_paths(&lines, "\r\n").unwrap();
        assert_eq!(crlf, values);
        // Blank lines are skipped by both; a quoted field half-way switches to the csv crate
        // for the rest of the body without changing any value.
        lines.insert(50_000, String::new());
        let mut fields: Vec<String> = lines[90_000].split(',').map(String::from).collect();
        fields[1] = format!("\"{}\"", fields[1]);
        lines[90_000] = fields.join(",");
        let (table, mixed) = both_paths(&lines, "\n").unwrap();
        assert_eq!(table.rows, 120_000);
        assert_eq!(mixed, values);
    }

    #[test]
    fn an_error_in_a_later_block_names_its_own_line() {
        let good = lines(120_000);
        let at = |line: usize, text: &str| {
            let mut lines = good.clone();
            lines[line - 1] = text.into();
            lines
        };
        let err = both_paths(&at(100_000, "1,2,x,4,5"), "\n").unwrap_err();
        assert_eq!(err, "line 100000, column 3 (\"c\"): \"x\" is not a number");
        let err = both_paths(&at(100_001, "1,2,inf,4,5"), "\r\n").unwrap_err();
        assert!(err.starts_with("line 100001, column 3"), "{err}");
        // The field count is checked before the values, as the csv crate path does.
        let err = both_paths(&at(99_999, "1,x,3,4,5,6"), "\n").unwrap_err();
        assert_eq!(err, "line 99999: expected 5 fields like the header, got 6");
        let err = both_paths(&at(99_998, "x,2"), "\n").unwrap_err();
        assert_eq!(err, "line 99998: expected 5 fields like the header, got 2");
        // After a quoted field sent the rest through the csv crate, lines still count on.
        let mut lines = at(110_000, "1,2,3,4,?");
        lines[40_000] = "\"1\",2,3,4,5".into();
        let err = both_paths(&lines, "\n").unwrap_err();
        assert_eq!(err, "line 110000, column 5 (\"y\"): \"?\" is not a number");
        // The first bad line wins even when a later block is parsed first.
        let mut lines = at(110_000, "1,2,3,4");
        lines[80_000] = "1,2,3,4,z".into();
        let err = both_paths(&lines, "\n").unwrap_err();
        assert!(err.starts_with("line 80001, column 5"), "{err}");
    }
}
