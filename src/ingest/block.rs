//! The fast path: a block of whole lines without quote characters, split and parsed in one
//! pass. Whether a block qualifies is decided by [`is_plain`]; anything else goes through
//! the csv crate, whose results this path reproduces exactly (same fields, same values, same
//! errors with the same line numbers).

use memchr::{memchr, memchr2_iter, memchr_iter};

use super::columns::{text_cell, BlockLevels, FieldFault, SlotStats};
use super::layout::Layout;
use super::IngestError;
use crate::parse::csv_number::{parse_general, parse_value};
use crate::parse::decimal;

/// The rows of one block in storage order (features, then targets) as cells, how many lines
/// (`\n`-terminated, blank ones included) it spanned, the texts it interned and its
/// statistics.
pub struct ParsedBlock {
    pub values: Vec<f32>,
    pub lines: u64,
    pub levels: BlockLevels,
    pub stats: Vec<SlotStats>,
}

impl ParsedBlock {
    pub fn new(layout: &Layout) -> ParsedBlock {
        ParsedBlock {
            values: Vec::new(),
            lines: 0,
            levels: BlockLevels::new(layout.columns.len()),
            stats: Vec::new(),
        }
    }
}

/// The cell of one field of `column` (any CSV path).
pub fn parse_field(
    layout: &Layout,
    levels: &mut BlockLevels,
    column: usize,
    field: &[u8],
) -> Result<f32, FieldFault> {
    if layout.rules.is_category(column) {
        return text_cell(&layout.rules, levels, column, field, None);
    }
    match parse_value(field) {
        Ok(value) => Ok(value),
        Err(fault) => text_cell(&layout.rules, levels, column, field, Some(fault)),
    }
}

/// True when the csv crate would split `block` exactly at its `,` and `\n` bytes: no quote
/// characters, and every `\r` ends a line (CRLF, or a lone `\r` as the very last byte of the
/// body, which the csv crate also takes as a terminator).
pub fn is_plain(block: &[u8], last: bool) -> bool {
    memchr2_iter(b'"', b'\r', block).all(|i| {
        block[i] == b'\r'
            && match block.get(i + 1) {
                Some(&next) => next == b'\n',
                None => last,
            }
    })
}

/// Parses a plain block; errors carry line numbers counted from 1 at the block's first line.
pub fn parse_block(block: &[u8], layout: &Layout) -> Result<ParsedBlock, IngestError> {
    let width = layout.columns.len();
    // ~3 bytes per field is typical of numeric CSVs; reserving more than that wastes little.
    let mut values = Vec::with_capacity(block.len() / 3 + width);
    let mut lines = 0u64;
    let mut levels = BlockLevels::new(width);
    let mut start = 0;
    while start < block.len() {
        let end = memchr(b'\n', &block[start..]).map_or(block.len(), |i| start + i);
        lines += 1;
        let line = match &block[start..end] {
            [line @ .., b'\r'] => line,
            line => line,
        };
        start = end + 1;
        // The csv crate skips blank lines (they still count for line numbers).
        if line.is_empty() {
            continue;
        }
        let row = values.len();
        values.resize(row + width, 0.0);
        parse_line(line, layout, &mut levels, &mut values[row..])
            .map_err(|err| err.map_line(|_| lines))?;
    }
    let stats = SlotStats::of_rows(&values, width);
    Ok(ParsedBlock {
        values,
        lines,
        levels,
        stats,
    })
}

/// Parses one line into `row`; the error's line number is filled in by the caller.
fn parse_line(
    line: &[u8],
    layout: &Layout,
    levels: &mut BlockLevels,
    row: &mut [f32],
) -> Result<(), IngestError> {
    let width = row.len();
    let mut pos = 0;
    for column in 0..width {
        let rest = &line[pos..];
        let (value, len) = match rest {
            _ if layout.rules.any_category && layout.rules.is_category(column) => {
                let len = memchr(b',', rest).unwrap_or(rest.len());
                (parse_field(layout, levels, column, &rest[..len]), len)
            }
            // Most values of sparse data (pixels, one-hot columns) are a bare zero.
            [b'0', b',', ..] | [b'0'] => (Ok(0.0), 1),
            _ => match decimal::parse(rest) {
                Ok((value, len)) if matches!(rest.get(len), None | Some(b',')) => (Ok(value), len),
                _ => {
                    let len = memchr(b',', rest).unwrap_or(rest.len());
                    let field = &rest[..len];
                    let value = match parse_general(field) {
                        Ok(value) => Ok(value),
                        Err(fault) => text_cell(&layout.rules, levels, column, field, Some(fault)),
                    };
                    (value, len)
                }
            },
        };
        pos += len;
        let last_field = pos == line.len();
        // A record with the wrong number of fields is reported as such before any of its
        // values, as the csv crate path does.
        if last_field != (column + 1 == width) {
            return Err(ragged(line, width));
        }
        match value {
            Ok(value) => row[layout.slot[column]] = value,
            Err(fault) => {
                if memchr_iter(b',', &line[pos..]).count() != width - column - 1 {
                    return Err(ragged(line, width));
                }
                return Err(layout.bad_value(0, column, &rest[..len], fault));
            }
        }
        pos += 1;
    }
    Ok(())
}

fn ragged(line: &[u8], expected: usize) -> IngestError {
    IngestError::Ragged {
        line: 0,
        expected,
        got: memchr_iter(b',', line).count() + 1,
    }
}
