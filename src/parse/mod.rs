//! The hand-written parsers: bytes in, f32 values or a reason out. No I/O, no HTTP, no
//! store: callers map the errors to their own (a problem answer, an ingest error).

/// One CSV field to one f32: `decimal` where JSON's number grammar covers it, std otherwise.
pub(crate) mod csv_number;
/// Decimal text to f32, correctly rounded, with a fast path for whole rows of short decimals.
pub(crate) mod decimal;
/// A predict body (`{"instances": [...]}`) straight into row-major f32 buffers, in one pass.
pub mod instances;
/// A byte cursor over JSON text: strict RFC 8259 lexing, errors by line and column.
mod json_cursor;
