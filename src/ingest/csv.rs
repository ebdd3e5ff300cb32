//! Streaming CSV parser: header line, then one number per field.
//!
//! Bodies without quote characters (numeric CSVs nearly always) take the fast path of
//! [`super::block`] on every core; from the first quote character on, the rest goes through
//! the csv crate on one thread. Both give the same rows and the same errors.

use std::io::{Cursor, Read};

use memchr::memchr;

use super::block::is_plain;
use super::chunker::CHUNK_BYTES;
use super::layout::Layout;
use super::parallel::{fill, parse_plain_blocks, BLOCK};
use super::records::for_each_record;
use super::{Chunk, Chunker, IngestError};
use crate::parse::csv_number::parse_value;
use crate::store::Table;

#[derive(Debug, Clone)]
pub struct CsvOptions {
    /// Target column names; empty means the last column.
    pub targets: Vec<String>,
    /// When set, the feature columns must be exactly these (in any order) and are stored in
    /// this order, e.g. to evaluate a model on a CSV whose columns were reordered.
    pub feature_order: Option<Vec<String>>,
    /// Stored chunks hold about this many bytes of rows.
    pub chunk_bytes: usize,
}

impl Default for CsvOptions {
    fn default() -> Self {
        Self {
            targets: Vec::new(),
            feature_order: None,
            chunk_bytes: CHUNK_BYTES,
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
    match header_end(&mut reader, &mut buf)? {
        Some(end) if buf[0] != b'\n' && buf[0] != b'\r' && is_plain(&buf[..end], false) => {
            let columns = header(&mut csv_reader(&buf[..end], true))?;
            let layout = Layout::new(columns, options)?;
            let mut chunker = Chunker::new(
                layout.features.len(),
                layout.targets.len(),
                options.chunk_bytes,
                emit,
            );
            buf.drain(..end);
            if let Some(rest) = parse_plain_blocks(&mut reader, buf, &layout, 1, &mut chunker)? {
                let records = csv_reader(Cursor::new(rest.bytes).chain(reader), false);
                csv_rows(records, &layout, rest.lines_before, &mut chunker)?;
            }
            finish(layout, chunker)
        }
        // A quoted or blank first line: everything through the csv crate.
        _ => {
            let mut records = csv_reader(Cursor::new(buf).chain(reader), true);
            let layout = Layout::new(header(&mut records)?, options)?;
            let mut chunker = Chunker::new(
                layout.features.len(),
                layout.targets.len(),
                options.chunk_bytes,
                emit,
            );
            csv_rows(records, &layout, 0, &mut chunker)?;
            finish(layout, chunker)
        }
    }
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

/// Rows through the csv crate; its line numbers count from `lines_before` + 1.
fn csv_rows<R, F>(
    records: csv::Reader<R>,
    layout: &Layout,
    lines_before: u64,
    chunker: &mut Chunker<F>,
) -> Result<(), IngestError>
where
    R: Read + Send,
    F: FnMut(Chunk) -> Result<(), IngestError>,
{
    let mut row = vec![0f32; layout.columns.len()];
    for_each_record(records, |record| {
        let line = lines_before + record.position().map_or(0, |p| p.line());
        if record.len() != layout.columns.len() {
            return Err(IngestError::Ragged {
                line,
                expected: layout.columns.len(),
                got: record.len(),
            });
        }
        for (column, field) in record.iter().enumerate() {
            row[layout.slot[column]] =
                parse_value(field).map_err(|fault| layout.bad_value(line, column, field, fault))?;
        }
        chunker.push_rows(&row)
    })
}

fn finish<F>(layout: Layout, chunker: Chunker<F>) -> Result<Table, IngestError>
where
    F: FnMut(Chunk) -> Result<(), IngestError>,
{
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

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str, targets: &[&str]) -> Result<(Table, Vec<f32>), IngestError> {
        let options = CsvOptions {
            targets: targets.iter().map(|s| s.to_string()).collect(),
            ..CsvOptions::default()
        };
        let mut values = Vec::new();
        let parsed = parse_csv(text.as_bytes(), &options, |chunk| {
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
