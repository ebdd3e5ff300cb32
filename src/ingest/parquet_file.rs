//! Parquet uploads: the file's own column types and nulls, turned into the same cells, levels
//! and statistics a CSV of the same table gives.
//!
//! The file is read one record batch at a time (the footer first, so it must be a seekable
//! file, not a stream), and each batch goes through the CSV path's block machinery
//! ([`ParsedBlock`], [`text_cell`], [`Sink`]): level codes, class indices of a text target,
//! identifiers and missing counts are decided in one place for every format.

use std::fs::File;
use std::panic::{catch_unwind, AssertUnwindSafe};

use arrow_array::cast::AsArray;
use arrow_array::types::{
    Float32Type, Float64Type, Int16Type, Int32Type, Int64Type, Int8Type, UInt16Type, UInt32Type,
    UInt64Type, UInt8Type,
};
use arrow_array::{Array, ArrowPrimitiveType, RecordBatch};
use arrow_schema::{DataType, Schema};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

use super::block::ParsedBlock;
use super::chunker::Sink;
use super::columns::{text_cell, BlockLevels, FieldFault, SlotStats};
use super::layout::Layout;
use super::{excerpt, Chunk, CsvOptions, IngestError};
use crate::parse::csv_number::{parse_value, Fault};
use crate::store::chunk_codec::cell;
use crate::store::{ColumnType, Table};

/// Rows per record batch: a few MiB of cells for a wide table, and the unit in which the
/// reader holds decoded columns in memory.
const BATCH_ROWS: usize = 8192;

/// Parses a Parquet file, handing rows to `emit` in chunks. Nulls are missing values, and
/// so are the texts in `na_values` (none unless the upload names some).
pub fn parse_parquet(
    file: File,
    options: &CsvOptions,
    emit: impl FnMut(Chunk) -> Result<(), IngestError>,
) -> Result<Table, IngestError> {
    // A decoder fed a crafted file may panic rather than fail; the client sent a bad file,
    // so it is answered as one instead of as a server fault.
    catch_unwind(AssertUnwindSafe(|| read(file, options, emit))).unwrap_or_else(|_| {
        Err(IngestError::Parquet(
            "the file is corrupt (its data could not be decoded)".into(),
        ))
    })
}

fn read(
    file: File,
    options: &CsvOptions,
    emit: impl FnMut(Chunk) -> Result<(), IngestError>,
) -> Result<Table, IngestError> {
    let builder = ParquetRecordBatchReaderBuilder::try_new(file)
        .map_err(|e| IngestError::NotParquet(e.to_string()))?;
    let schema = builder.schema().clone();
    if schema.fields().is_empty() {
        return Err(IngestError::Parquet("the file has no columns".into()));
    }
    check_types(&schema)?;
    // A model trained on the dataset reads clients' texts with the markers the user gave
    // (the defaults when none): nulls need no marker.
    let given = options.na_values.clone();
    let options = CsvOptions {
        // Parquet has real nulls: no text means missing unless the upload says so.
        na_values: Some(options.na_values.clone().unwrap_or_default()),
        ..options.clone()
    };
    let columns = schema.fields().iter().map(|f| f.name().clone()).collect();
    let layout = Layout::new(columns, &options)?;
    let mut sink = Sink::new(&layout, options.chunk_bytes, emit);
    let batches = builder
        .with_batch_size(BATCH_ROWS)
        .build()
        .map_err(|e| IngestError::Parquet(e.to_string()))?;
    let mut rows_before = 0u64;
    for batch in batches {
        let batch = batch.map_err(|e| IngestError::Parquet(e.to_string()))?;
        sink.push(block(&batch, &layout, rows_before)?)?;
        rows_before += batch.num_rows() as u64;
    }
    sink.finish().map(|table| Table {
        na_values: given,
        ..table
    })
}

/// Refuses, before any row is read, a column whose values a dataset cannot hold.
fn check_types(schema: &Schema) -> Result<(), IngestError> {
    for field in schema.fields() {
        let supported = match field.data_type() {
            DataType::Dictionary(_, values) => is_text(values),
            other => is_number(other) || is_text(other) || *other == DataType::Boolean,
        };
        if !supported {
            return Err(IngestError::UnsupportedColumn {
                name: field.name().clone(),
                data_type: field.data_type().to_string(),
            });
        }
    }
    Ok(())
}

fn is_number(data_type: &DataType) -> bool {
    use DataType::*;
    matches!(
        data_type,
        Int8 | Int16 | Int32 | Int64 | UInt8 | UInt16 | UInt32 | UInt64 | Float32 | Float64
    )
}

fn is_text(data_type: &DataType) -> bool {
    matches!(
        data_type,
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View
    )
}

/// One batch as a block of stored rows.
fn block(
    batch: &RecordBatch,
    layout: &Layout,
    rows_before: u64,
) -> Result<ParsedBlock, IngestError> {
    let width = layout.columns.len();
    let mut block = ParsedBlock::new(layout);
    block.values = vec![0.0; batch.num_rows() * width];
    for (column, array) in batch.columns().iter().enumerate() {
        let slot = layout.slot[column];
        let mut put = |row: usize, value: Option<Value<'_>>| {
            block.values[row * width + slot] = match value {
                None => cell::MISSING,
                Some(value) => {
                    cell_of(layout, &mut block.levels, column, value).map_err(|(text, fault)| {
                        bad_value(layout, rows_before + row as u64 + 1, column, &text, fault)
                    })?
                }
            };
            Ok(())
        };
        for_each_value(array.as_ref(), &mut put)?;
    }
    block.stats = SlotStats::of_rows(&block.values, width);
    Ok(block)
}

/// One present value, as the file typed it.
enum Value<'a> {
    Integer(i64),
    Unsigned(u64),
    Single(f32),
    Double(f64),
    Boolean(bool),
    Text(&'a str),
}

type Put<'p> = dyn FnMut(usize, Option<Value<'_>>) -> Result<(), IngestError> + 'p;

/// Calls `put` with every row's value (None for a null) of a column [`check_types`] let in.
fn for_each_value(array: &dyn Array, put: &mut Put<'_>) -> Result<(), IngestError> {
    match array.data_type() {
        DataType::Int8 => primitive::<Int8Type>(array, put, |v| Value::Integer(v.into())),
        DataType::Int16 => primitive::<Int16Type>(array, put, |v| Value::Integer(v.into())),
        DataType::Int32 => primitive::<Int32Type>(array, put, |v| Value::Integer(v.into())),
        DataType::Int64 => primitive::<Int64Type>(array, put, Value::Integer),
        DataType::UInt8 => primitive::<UInt8Type>(array, put, |v| Value::Unsigned(v.into())),
        DataType::UInt16 => primitive::<UInt16Type>(array, put, |v| Value::Unsigned(v.into())),
        DataType::UInt32 => primitive::<UInt32Type>(array, put, |v| Value::Unsigned(v.into())),
        DataType::UInt64 => primitive::<UInt64Type>(array, put, Value::Unsigned),
        DataType::Float32 => primitive::<Float32Type>(array, put, Value::Single),
        DataType::Float64 => primitive::<Float64Type>(array, put, Value::Double),
        DataType::Boolean => {
            let array = array.as_boolean();
            (0..array.len())
                .try_for_each(|i| put(i, array.is_valid(i).then(|| Value::Boolean(array.value(i)))))
        }
        DataType::Dictionary(..) => {
            let dictionary = array.as_any_dictionary();
            let texts = Texts::of(dictionary.values().as_ref());
            let keys = dictionary.normalized_keys();
            // Nulls of the keys and of the dictionary's own values alike.
            let nulls = array.logical_nulls();
            (0..array.len()).try_for_each(|i| {
                let valid = nulls.as_ref().is_none_or(|n| n.is_valid(i));
                put(i, valid.then(|| Value::Text(texts.get(keys[i]))))
            })
        }
        _ => {
            let texts = Texts::of(array);
            (0..array.len())
                .try_for_each(|i| put(i, array.is_valid(i).then(|| Value::Text(texts.get(i)))))
        }
    }
}

fn primitive<T: ArrowPrimitiveType>(
    array: &dyn Array,
    put: &mut Put<'_>,
    value: impl Fn(T::Native) -> Value<'static>,
) -> Result<(), IngestError> {
    let array = array.as_primitive::<T>();
    (0..array.len()).try_for_each(|i| put(i, array.is_valid(i).then(|| value(array.value(i)))))
}

/// A text column in any of Arrow's three layouts.
enum Texts<'a> {
    Small(&'a arrow_array::StringArray),
    Large(&'a arrow_array::LargeStringArray),
    View(&'a arrow_array::StringViewArray),
}

impl<'a> Texts<'a> {
    /// `array` is of a type [`is_text`] accepts.
    fn of(array: &'a dyn Array) -> Texts<'a> {
        match array.data_type() {
            DataType::LargeUtf8 => Texts::Large(array.as_string::<i64>()),
            DataType::Utf8View => Texts::View(array.as_string_view()),
            _ => Texts::Small(array.as_string::<i32>()),
        }
    }

    fn get(&self, i: usize) -> &'a str {
        match self {
            Texts::Small(a) => a.value(i),
            Texts::Large(a) => a.value(i),
            Texts::View(a) => a.value(i),
        }
    }
}

/// The cell of a present value: numbers stay numbers unless `types` makes the column a
/// category (then their text is the level, spelt as pandas and pyarrow write it to CSV:
/// `7`, `1.0`), text is a level unless `types` makes the column a number. On failure, the
/// value's text and the fault.
fn cell_of(
    layout: &Layout,
    levels: &mut BlockLevels,
    column: usize,
    value: Value<'_>,
) -> Result<f32, (String, FieldFault)> {
    let rules = &layout.rules;
    let number = rules.forced[column] == Some(ColumnType::Number);
    let category = rules.is_category(column);
    let level = |levels: &mut BlockLevels, text: &str| {
        text_cell(rules, levels, column, text.as_bytes(), None).map_err(|f| (text.to_owned(), f))
    };
    match value {
        Value::Text(text) if number => parse_value(text.as_bytes())
            .or_else(|fault| {
                // A missing marker given by `na_values` still reads as missing.
                text_cell(rules, levels, column, text.as_bytes(), Some(fault))
            })
            .map_err(|f| (text.to_owned(), f)),
        Value::Text(text) => level(levels, text),
        Value::Boolean(b) if number => Ok(f32::from(u8::from(b))),
        Value::Boolean(b) => level(levels, if b { "true" } else { "false" }),
        // pandas writes NaN for a missing float, and `NaN` is a missing marker in a CSV.
        Value::Single(v) if v.is_nan() => Ok(cell::MISSING),
        Value::Double(v) if v.is_nan() => Ok(cell::MISSING),
        Value::Integer(v) if category => level(levels, &v.to_string()),
        Value::Unsigned(v) if category => level(levels, &v.to_string()),
        Value::Single(v) if category => level(levels, &format!("{v:?}")),
        Value::Double(v) if category => level(levels, &format!("{v:?}")),
        Value::Integer(v) => Ok(v as f32),
        Value::Unsigned(v) => Ok(v as f32),
        Value::Single(v) => Ok(v).and_then(finite),
        Value::Double(v) => finite(v as f32).map_err(|(_, fault)| (format!("{v:?}"), fault)),
    }
}

/// A float as stored: infinities, and doubles beyond f32's range, are refused as the CSV
/// path refuses them.
fn finite(value: f32) -> Result<f32, (String, FieldFault)> {
    if value.is_finite() {
        Ok(value)
    } else {
        Err((format!("{value:?}"), FieldFault::Number(Fault::NotFinite)))
    }
}

fn bad_value(
    layout: &Layout,
    row: u64,
    column: usize,
    text: &str,
    fault: FieldFault,
) -> IngestError {
    let problem = match fault {
        FieldFault::Number(Fault::NotANumber) => {
            "is not a number, and `types` makes the column a number"
        }
        FieldFault::Number(Fault::NotFinite) => {
            "is not finite or beyond the f32 range (infinities are rejected)"
        }
        FieldFault::TooManyLevels => "is one distinct value more than a column can hold",
    };
    IngestError::ParquetValue {
        row,
        name: layout.columns[column].clone(),
        value: excerpt(text.as_bytes()),
        problem,
    }
}

#[cfg(test)]
mod tests {
    use std::io::{Seek, SeekFrom};
    use std::sync::Arc;

    use arrow_array::{
        ArrayRef, BooleanArray, Date32Array, DictionaryArray, Float32Array, Float64Array,
        LargeStringArray, StringViewArray, UInt64Array,
    };
    use parquet::arrow::ArrowWriter;

    use super::*;
    use crate::ingest::parse_csv;
    use crate::store::chunk_codec;

    fn file_of(columns: Vec<(&str, ArrayRef)>) -> File {
        let batch = RecordBatch::try_from_iter(columns).unwrap();
        let mut file = tempfile::tempfile().unwrap();
        let mut writer =
            ArrowWriter::try_new(file.try_clone().unwrap(), batch.schema(), None).unwrap();
        writer.write(&batch).unwrap();
        writer.close().unwrap();
        file.seek(SeekFrom::Start(0)).unwrap();
        file
    }

    fn stored(result: Result<Table, IngestError>, values: Vec<f32>) -> (Table, Vec<u32>) {
        let bits = values.iter().map(|v| v.to_bits()).collect();
        (result.unwrap(), bits)
    }

    fn parquet(file: File, options: &CsvOptions) -> Result<(Table, Vec<u32>), IngestError> {
        let mut values = Vec::new();
        let table = parse_parquet(file, options, |chunk| {
            values.extend(chunk_codec::values(&chunk.data));
            Ok(())
        })?;
        Ok(stored(Ok(table), values))
    }

    fn csv(text: &str, options: &CsvOptions) -> (Table, Vec<u32>) {
        let mut values = Vec::new();
        let table = parse_csv(text.as_bytes(), options, |chunk| {
            values.extend(chunk_codec::values(&chunk.data));
            Ok(())
        });
        stored(table, values)
    }

    /// The Arrow layouts pyarrow does not write by default, against the CSV of the same
    /// table: large and view strings, unsigned and single-precision numbers, a NaN, a float
    /// code typed `category`, and a text label.
    #[test]
    fn every_layout_stores_as_its_csv() {
        let keys = arrow_array::Int8Array::from(vec![Some(0), None, Some(1), Some(0)]);
        let values = arrow_array::StringArray::from(vec!["red", "blue"]);
        let file = file_of(vec![
            (
                "name",
                Arc::new(LargeStringArray::from(vec![
                    Some("a"),
                    Some("b"),
                    None,
                    Some("a"),
                ])),
            ),
            (
                "colour",
                Arc::new(DictionaryArray::try_new(keys, Arc::new(values)).unwrap()),
            ),
            (
                "count",
                Arc::new(UInt64Array::from(vec![
                    Some(7),
                    Some(u64::MAX),
                    None,
                    Some(0),
                ])),
            ),
            (
                "ratio",
                Arc::new(Float32Array::from(vec![
                    Some(0.1),
                    Some(f32::NAN),
                    Some(-2.5),
                    None,
                ])),
            ),
            (
                "code",
                Arc::new(Float64Array::from(vec![1.0, 2.5, 1.0, 3.0])),
            ),
            (
                "on",
                Arc::new(BooleanArray::from(vec![
                    Some(true),
                    None,
                    Some(false),
                    Some(true),
                ])),
            ),
            (
                "label",
                Arc::new(StringViewArray::from(vec![
                    Some("yes"),
                    Some("no"),
                    None,
                    Some("no"),
                ])),
            ),
        ]);
        let options = CsvOptions {
            types: vec![("code".into(), ColumnType::Category)],
            ..CsvOptions::default()
        };
        let text = "name,colour,count,ratio,code,on,label
a,red,7,0.1,1.0,true,yes
b,,18446744073709551615,,2.5,,no
,blue,,-2.5,1.0,false,
a,red,0,,3.0,true,no
";
        let (expected, cells) = csv(text, &options);
        let (table, bits) = parquet(file, &options).unwrap();
        assert_eq!(bits, cells);
        assert_eq!(table.column_reports, expected.column_reports);
        assert_eq!(
            (table.unlabelled_rows, &table.target_stats),
            (1, &expected.target_stats)
        );
        assert_eq!(table.column_reports[4].levels, ["1.0", "2.5", "3.0"]);
    }

    #[test]
    fn values_and_types_a_dataset_cannot_hold_name_their_column() {
        let dates = || {
            file_of(vec![
                ("day", Arc::new(Date32Array::from(vec![1, 2])) as ArrayRef),
                ("y", Arc::new(Float64Array::from(vec![0.0, 1.0]))),
            ])
        };
        let err = parquet(dates(), &CsvOptions::default())
            .unwrap_err()
            .to_string();
        assert!(err.contains("\"day\"") && err.contains("Date32"), "{err}");
        let wide = file_of(vec![
            (
                "x",
                Arc::new(Float64Array::from(vec![1.0, 1e300])) as ArrayRef,
            ),
            ("y", Arc::new(Float64Array::from(vec![0.0, 1.0]))),
        ]);
        let err = parquet(wide, &CsvOptions::default())
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("row 2, column \"x\": \"1e300\""), "{err}");
        let mut text = tempfile::tempfile().unwrap();
        std::io::Write::write_all(&mut text, b"x,y\n1,2\n").unwrap();
        let err = parquet(text, &CsvOptions::default()).unwrap_err();
        assert!(matches!(err, IngestError::NotParquet(_)), "{err}");
    }
}
