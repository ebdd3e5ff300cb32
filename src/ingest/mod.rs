//! Turning uploaded CSV, Parquet and JSON into stored f32 row chunks.
//!
//! Parsing is synchronous (it is CPU work and runs on a blocking thread); [`upload`] ties a
//! streamed request body to the parser and the parser's chunks to one store transaction.
//! Every format's rows go through the same blocks, vocabularies and statistics
//! ([`columns`], [`chunker`]), so the same table stores the same way whatever its format.

mod block;
mod chunker;
mod columns;
mod csv;
mod json;
mod layout;
mod parallel;
mod parquet_file;
mod records;
mod upload;

pub use self::chunker::Chunk;
use self::chunker::Chunker;
pub use self::csv::{parse_csv, CsvOptions, DEFAULT_NA};
pub use self::json::{parse_json, JsonDataset, JsonTargets};
pub use self::upload::{store_csv, store_json, store_parquet};

use crate::store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    #[error("the body is empty: expected a header line of column names")]
    Empty,
    #[error("the dataset name {0:?} holds a control character")]
    BadName(String),
    #[error("line 1: column {column} has an empty name")]
    EmptyColumnName { column: usize },
    #[error("line 1: column name {name:?} appears twice (columns {first} and {second})")]
    DuplicateColumn {
        name: String,
        first: usize,
        second: usize,
    },
    #[error("line 1 must be a header of column names, but every field in it is a number")]
    HeaderIsNumeric,
    #[error("unknown target column {name:?}; the columns are {columns:?}")]
    UnknownTarget { name: String, columns: Vec<String> },
    #[error("`types` names the column {name:?}, which the header does not have; the columns are {columns:?}")]
    UnknownTypedColumn { name: String, columns: Vec<String> },
    #[error("target column {0:?} is named twice")]
    DuplicateTarget(String),
    #[error("every column is a target; at least one feature column is needed")]
    NoFeatures,
    #[error("{0}")]
    Columns(String),
    #[error("line {line}: expected {expected} fields like the header, got {got}")]
    Ragged {
        line: u64,
        expected: usize,
        got: usize,
    },
    #[error("line {line}, column {column} ({name:?}): {value:?} is not a number")]
    NotANumber {
        line: u64,
        column: usize,
        name: String,
        value: String,
    },
    #[error("line {line}, column {column} ({name:?}): {value:?} is not finite (NaN and infinities are rejected)")]
    NotFinite {
        line: u64,
        column: usize,
        name: String,
        value: String,
    },
    /// A Parquet value that cannot be stored; `row` counts the file's rows from 1.
    #[error("row {row}, column {name:?}: {value:?} {problem}")]
    ParquetValue {
        row: u64,
        name: String,
        value: String,
        problem: &'static str,
    },
    #[error("column {name:?} is of the Parquet type {data_type}, which a dataset cannot hold: columns must be numbers (integers, floats), booleans or text (strings, dictionary-encoded strings)")]
    UnsupportedColumn { name: String, data_type: String },
    #[error("the body is not a Parquet file: {0}")]
    NotParquet(String),
    /// A Parquet file whose footer reads but whose data does not (corrupt pages, a codec
    /// this build does not decode).
    #[error("reading the Parquet file failed: {0}")]
    Parquet(String),
    #[error("no data rows")]
    NoRows,
    #[error("malformed CSV: {0}")]
    Csv(String),
    /// A JSON body whose shape or values are wrong.
    #[error("{0}")]
    Invalid(String),
    #[error("the request body is larger than the limit of {limit} bytes")]
    TooLarge { limit: usize },
    #[error("reading the request body failed: {0}")]
    Body(String),
    /// Writing a Parquet body to its temporary file failed (a full disk, say): the server's
    /// fault, not the client's.
    #[error("spooling the body to a temporary file failed: {0}")]
    Spool(std::io::Error),
    /// The consumer of the chunks went away (its own error is the one to report).
    #[error("upload aborted")]
    Aborted,
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl IngestError {
    /// The same error with its line number (if it has one) mapped through `f`.
    fn map_line(mut self, f: impl FnOnce(u64) -> u64) -> Self {
        if let Self::Ragged { line, .. }
        | Self::NotANumber { line, .. }
        | Self::NotFinite { line, .. } = &mut self
        {
            *line = f(*line);
        }
        self
    }
}

/// Shortens a client-supplied value quoted back in an error message.
fn excerpt(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    match text.char_indices().nth(40) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.into_owned(),
    }
}
