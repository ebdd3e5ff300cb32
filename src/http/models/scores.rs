//! The answer of batch scoring, as H2O scores a frame: one line per input row in input
//! order, the kept columns first, then `class` and one probability column per class (named
//! by class) for a classifier, or one column per regression output (named by target); as
//! CSV, or as JSON objects keyed by the same names.

use std::fmt::Write as _;

use axum::http::{header, HeaderMap};
use bytes::Bytes;
use ndarray::ArrayView2;

use crate::http::error::{Error, Result};
use crate::nn::Model;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Format {
    Csv,
    Json,
}

impl Format {
    /// CSV unless the client prefers JSON: the first of the two its `Accept` names wins.
    pub fn accepted(headers: &HeaderMap) -> Format {
        let accept = headers
            .get_all(header::ACCEPT)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(|v| {
                v.split(';')
                    .next()
                    .unwrap_or_default()
                    .trim()
                    .to_ascii_lowercase()
            });
        for media in accept {
            match media.as_str() {
                "application/json" => return Format::Json,
                "text/csv" => return Format::Csv,
                _ => {}
            }
        }
        Format::Csv
    }

    pub fn content_type(self) -> &'static str {
        match self {
            Format::Csv => "text/csv",
            Format::Json => "application/json",
        }
    }
}

/// A kept input value.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(super) enum Kept<'a> {
    Text(&'a str),
    Number(f32),
    Missing,
}

/// Writes the answer's lines in blocks, so a stored dataset's answer can be streamed.
pub(super) struct ScoreWriter {
    format: Format,
    /// The kept columns' names, then the outputs'.
    columns: Vec<String>,
    keep: usize,
    /// The label of each class, when the target was text; else the index is the class.
    class_names: Option<Vec<String>>,
    /// A single sigmoid output: its probability is the second class's.
    binary: bool,
    /// The lines of the current block: CSV through the csv crate (its quoting), JSON as is.
    csv: csv::Writer<Vec<u8>>,
    json: Vec<u8>,
    started: bool,
    rows: usize,
    /// Reused per line: the line's fields, formatted.
    text: String,
    ends: Vec<usize>,
}

impl ScoreWriter {
    /// Refuses `keep` names that collide with each other or with an output's name.
    pub fn new(
        format: Format,
        keep: &[String],
        model: &Model,
        target_names: &[String],
    ) -> Result<ScoreWriter> {
        let class_names = model.class_names().map(<[String]>::to_vec);
        let outputs: Vec<String> = match model.class_count() {
            Some(classes) => std::iter::once("class".to_owned())
                .chain((0..classes).map(|c| match &class_names {
                    Some(names) => names.get(c).cloned().unwrap_or_else(|| c.to_string()),
                    None => c.to_string(),
                }))
                .collect(),
            None if target_names.len() == model.output_width() => target_names.to_vec(),
            None => (0..model.output_width())
                .map(|i| format!("output_{i}"))
                .collect(),
        };
        let columns: Vec<String> = keep.iter().cloned().chain(outputs).collect();
        for (i, name) in columns.iter().enumerate().take(keep.len()) {
            if columns[i + 1..].contains(name) {
                return Err(Error::Unprocessable(format!(
                    "keep names {name:?} twice, or a column of the answer has that name too; \
                     the answer's columns would be {columns:?}"
                )));
            }
        }
        Ok(ScoreWriter {
            format,
            columns,
            keep: keep.len(),
            class_names,
            binary: model.class_count() == Some(2) && model.output_width() == 1,
            csv: csv::Writer::from_writer(Vec::new()),
            json: Vec::new(),
            started: false,
            rows: 0,
            text: String::new(),
            ends: Vec::new(),
        })
    }

    /// Writes the lines of a block of rows: `kept(row, k)` gives the kept values.
    pub fn rows<'k>(
        &mut self,
        predictions: ArrayView2<'_, f32>,
        classes: Option<&[usize]>,
        kept: impl Fn(usize, usize) -> Kept<'k>,
    ) {
        if !self.started {
            self.start();
        }
        let predictions = predictions.as_standard_layout();
        let mut values: Vec<Kept<'k>> = Vec::with_capacity(self.keep);
        for (r, outputs) in predictions.rows().into_iter().enumerate() {
            values.clear();
            values.extend((0..self.keep).map(|k| kept(r, k)));
            let outputs = outputs.to_slice().expect("rows of a standard layout");
            let class = classes.map(|c| c[r]);
            match self.format {
                Format::Csv => self.csv_line(&values, class, outputs),
                Format::Json => self.json_object(&values, class, outputs),
            }
            self.rows += 1;
        }
    }

    /// What has been written since the last call.
    pub fn take(&mut self) -> Bytes {
        match self.format {
            Format::Csv => {
                let block = std::mem::replace(&mut self.csv, csv::Writer::from_writer(Vec::new()));
                Bytes::from(block.into_inner().expect("flushing into a Vec"))
            }
            Format::Json => Bytes::from(std::mem::take(&mut self.json)),
        }
    }

    /// The end of the answer (and its start, had no row come).
    pub fn finish(&mut self) -> Bytes {
        if !self.started {
            self.start();
        }
        if self.format == Format::Json {
            self.json.extend_from_slice(b"\n]\n");
        }
        self.take()
    }

    fn start(&mut self) {
        self.started = true;
        match self.format {
            Format::Csv => self
                .csv
                .write_record(&self.columns)
                .expect("writing to a Vec"),
            Format::Json => self.json.push(b'['),
        }
    }

    fn csv_line(&mut self, kept: &[Kept<'_>], class: Option<usize>, outputs: &[f32]) {
        let (text, ends) = (&mut self.text, &mut self.ends);
        text.clear();
        ends.clear();
        for value in kept {
            match value {
                Kept::Text(t) => text.push_str(t),
                Kept::Number(v) => write!(text, "{v}").expect("writing to a String"),
                Kept::Missing => {}
            }
            ends.push(text.len());
        }
        if let Some(class) = class {
            match self.class_names.as_ref().and_then(|n| n.get(class)) {
                Some(label) => text.push_str(label),
                None => write!(text, "{class}").expect("writing to a String"),
            }
            ends.push(text.len());
        }
        for p in probabilities(self.binary, outputs) {
            write!(text, "{p}").expect("writing to a String");
            ends.push(text.len());
        }
        let mut start = 0;
        for &end in ends.iter() {
            self.csv
                .write_field(&text.as_bytes()[start..end])
                .expect("writing to a Vec");
            start = end;
        }
        self.csv
            .write_record(None::<&[u8]>)
            .expect("writing to a Vec");
    }

    fn json_object(&mut self, kept: &[Kept<'_>], class: Option<usize>, outputs: &[f32]) {
        let out = &mut self.json;
        out.extend_from_slice(if self.rows == 0 { b"\n{" } else { b",\n{" });
        let mut names = self.columns.iter();
        let mut key = |out: &mut Vec<u8>| {
            let name = names.next().expect("a name per value");
            if out.last() != Some(&b'{') {
                out.push(b',');
            }
            serde_json::to_writer(&mut *out, name).expect("writing to a Vec");
            out.push(b':');
        };
        for value in kept {
            key(out);
            match value {
                Kept::Text(t) => serde_json::to_writer(&mut *out, t),
                Kept::Number(v) => serde_json::to_writer(&mut *out, v),
                Kept::Missing => serde_json::to_writer(&mut *out, &()),
            }
            .expect("writing to a Vec");
        }
        if let Some(class) = class {
            key(out);
            match self.class_names.as_ref().and_then(|n| n.get(class)) {
                Some(label) => serde_json::to_writer(&mut *out, label),
                None => serde_json::to_writer(&mut *out, &class),
            }
            .expect("writing to a Vec");
        }
        for p in probabilities(self.binary, outputs) {
            key(out);
            // A non-finite output (a diverged model) is null, as serde_json writes it.
            serde_json::to_writer(&mut *out, &p).expect("writing to a Vec");
        }
        out.push(b'}');
    }
}

/// The probability of each class (or each output) of a row: one sigmoid output is the
/// second class's, the first's its complement (computed in f32).
fn probabilities(binary: bool, outputs: &[f32]) -> impl Iterator<Item = f32> + '_ {
    let complement = binary.then(|| 1.0 - outputs[0]);
    complement.into_iter().chain(outputs.iter().copied())
}
