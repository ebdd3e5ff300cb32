//! Parsing `{"instances": [...]}` (and TensorFlow Serving's columnar `{"inputs": ...}`) straight into row-major f32 buffers in one pass: rows are
//! arrays in feature order or objects keyed by feature name. Hand-written rather than serde:
//! a large body is mostly number text, and serde_json's generic path spends several times
//! this parser's time on it (see `docs/performance.md`).
//!
//! A large body is read by two threads, each from one end of the rows, and each thread
//! hands its rows to the caller's `each` as soon as they are parsed: predict runs the model
//! on each half where it was parsed, so neither core waits for the other between parsing
//! and predicting.

mod parser;

use std::collections::HashMap;

use crate::parse::json_cursor::{CursorError, JsonCursor};
use parser::Parser;

/// Row-major values, `rows` × the model's input width.
pub struct Instances {
    pub values: Vec<f32>,
    pub rows: usize,
}

pub enum InstancesError {
    /// Not JSON (answered 400).
    Malformed(String),
    /// JSON, but not rows this model takes (answered 422).
    Invalid(String),
}

impl From<CursorError> for InstancesError {
    fn from(e: CursorError) -> Self {
        match e {
            CursorError::Syntax(text) => InstancesError::Malformed(text),
            // Callers that can name the value map this themselves.
            CursorError::Range => {
                InstancesError::Invalid("a number is outside the f32 range".into())
            }
        }
    }
}

type Result<T> = std::result::Result<T, InstancesError>;

/// Which of TensorFlow Serving's request formats a body used; its answer is keyed alike
/// (`predictions` for rows, `outputs` for columns).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Form {
    /// `instances`: a list of rows.
    Instances,
    /// `inputs`: the rows as one tensor (a list of rows), or an object of one column per
    /// feature.
    Inputs,
}

impl Form {
    pub fn key(self) -> &'static str {
        match self {
            Form::Instances => "instances",
            Form::Inputs => "inputs",
        }
    }
}

/// What runs on each part of the rows: the part, and how many parts are being worked on
/// at once (so that it can size its own threads).
type Each<'a, R> = dyn Fn(Instances, usize) -> R + Sync + 'a;

/// Bodies from this size are parsed by two threads, each from one end of the rows.
const SPLIT_BYTES: usize = 256 << 10;

/// Parses the body and runs `each` on its rows, in one part or two consecutive ones;
/// returns `each`'s results in row order. `features` are in the model's input order;
/// `index` maps each name to its position.
pub fn parse_with<R: Send>(
    body: &[u8],
    features: &[String],
    index: &HashMap<String, usize>,
    each: impl Fn(Instances, usize) -> R + Sync,
) -> Result<Vec<R>> {
    parse_body(body, features, index, false, &each).map(|(parts, _)| parts)
}

/// As [`parse_with`], for a TensorFlow Serving body: `instances` rows or columnar
/// `inputs`, never both; also says which it was.
pub fn parse_tf_serving<R: Send>(
    body: &[u8],
    features: &[String],
    index: &HashMap<String, usize>,
    each: impl Fn(Instances, usize) -> R + Sync,
) -> Result<(Vec<R>, Form)> {
    parse_body(body, features, index, true, &each)
        .map(|(parts, form)| (parts, form.unwrap_or(Form::Instances)))
}

fn parse_body<R: Send>(
    body: &[u8],
    features: &[String],
    index: &HashMap<String, usize>,
    columnar: bool,
    each: &Each<'_, R>,
) -> Result<(Vec<R>, Option<Form>)> {
    match split_point(body) {
        Some(at) => std::thread::scope(|scope| {
            let tail = scope.spawn(move || {
                let cursor = JsonCursor {
                    text: body,
                    pos: at,
                };
                tail_rows(Parser::new(cursor, features, index, each))
            });
            let mut parser = Parser::new(JsonCursor::new(body), features, index, each);
            parser.split = Some((at, Box::new(move || tail.join().ok().flatten())));
            parser.columnar = columnar;
            finish(parser)
        }),
        None => {
            let mut parser = Parser::new(JsonCursor::new(body), features, index, each);
            parser.columnar = columnar;
            finish(parser)
        }
    }
}

fn finish<R>(mut parser: Parser<'_, R>) -> Result<(Vec<R>, Option<Form>)> {
    parser.body()?;
    if parser.rows == 0 {
        let key = parser.form.unwrap_or(Form::Instances).key();
        return Err(InstancesError::Invalid(format!("{key} is empty")));
    }
    parser.emit(1);
    Ok((parser.parts, parser.form))
}

/// A guess at where a row starts near the middle of a large body: `]`, `,`, `[` with
/// only whitespace between. Only a guess: the same bytes may sit inside a string, so the
/// first thread uses the second's rows only if it reaches this offset as a row start.
fn split_point(body: &[u8]) -> Option<usize> {
    if body.len() < SPLIT_BYTES {
        return None;
    }
    let mut i = body.len() / 2;
    while i < body.len() {
        i += body[i..].iter().position(|&c| c == b']')? + 1;
        let mut j = i;
        let mut comma = false;
        while let Some(&c) = body.get(j) {
            match c {
                b' ' | b'\n' | b'\r' | b'\t' => {}
                b',' if !comma => comma = true,
                b'[' if comma => return Some(j),
                _ => break,
            }
            j += 1;
        }
    }
    None
}

/// The second thread's share: rows from a guessed row start to the end of `instances`,
/// run through `each`. `None` if they do not parse; the first thread then parses them
/// itself, with the error message and row numbers that that gives.
fn tail_rows<R>(mut parser: Parser<'_, R>) -> Option<Tail<R>> {
    let start = parser.cur.pos;
    loop {
        parser.row().ok()?;
        if parser.rows == 1 {
            parser.reserve_like(parser.cur.pos - start);
        }
        if !parser.cur.more(b']', "").ok()? {
            break;
        }
    }
    let rows = parser.rows;
    parser.emit(2);
    Some(Tail {
        part: parser.parts.pop()?,
        rows,
        end: parser.cur.pos,
    })
}

/// Waits for the second thread's rows.
type JoinTail<'a, R> = Box<dyn FnOnce() -> Option<Tail<R>> + 'a>;

struct Tail<R> {
    part: R,
    rows: usize,
    /// Just after the `]` that closes `instances`.
    end: usize,
}

fn invalid<T>(message: String) -> Result<T> {
    Err(InstancesError::Invalid(message))
}

#[cfg(test)]
mod tests;
