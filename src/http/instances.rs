//! Parsing `{"instances": [...]}` straight into one row-major f32 buffer in one pass: rows are
//! arrays in feature order or objects keyed by feature name. Hand-written rather than serde:
//! a 1000-row W1 body is 2.5 MB of number text, and serde_json spent 18–27 ms on it where
//! this parser takes a few (see `docs/performance.md`).

use std::collections::HashMap;

use super::scan::{Cursor, ScanError};
use crate::decimal;

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

impl From<ScanError> for InstancesError {
    fn from(e: ScanError) -> Self {
        match e {
            ScanError::Syntax(text) => InstancesError::Malformed(text),
            // Callers that can name the value map this themselves.
            ScanError::Range => InstancesError::Invalid("a number is outside the f32 range".into()),
        }
    }
}

type Result<T> = std::result::Result<T, InstancesError>;

/// Bodies from this size are parsed by two threads, each from one end of the rows.
const SPLIT_BYTES: usize = 256 << 10;

/// `features` in the model's input order; `index` maps each name to its position.
pub fn parse(
    body: &[u8],
    features: &[String],
    index: &HashMap<String, usize>,
) -> Result<Instances> {
    match split_point(body) {
        Some(at) => std::thread::scope(|scope| {
            let tail = scope.spawn(move || {
                tail_rows(Parser::new(
                    Cursor {
                        text: body,
                        pos: at,
                    },
                    features,
                    index,
                ))
            });
            let mut parser = Parser::new(Cursor::new(body), features, index);
            parser.split = Some((at, Box::new(move || tail.join().ok().flatten())));
            finish(parser)
        }),
        None => finish(Parser::new(Cursor::new(body), features, index)),
    }
}

fn finish(mut parser: Parser<'_>) -> Result<Instances> {
    parser.body()?;
    if parser.rows == 0 {
        return Err(InstancesError::Invalid("instances is empty".into()));
    }
    Ok(Instances {
        values: parser.values,
        rows: parser.rows,
    })
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

/// The second thread's share: rows from a guessed row start to the end of `instances`.
/// `None` if they do not parse; the first thread then parses them itself, with the error
/// message and row numbers that that gives.
fn tail_rows(mut parser: Parser<'_>) -> Option<Tail> {
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
    Some(Tail {
        values: parser.values,
        rows: parser.rows,
        end: parser.cur.pos,
    })
}

/// Waits for the second thread's rows.
type JoinTail<'a> = Box<dyn FnOnce() -> Option<Tail> + 'a>;

struct Tail {
    values: Vec<f32>,
    rows: usize,
    /// Just after the `]` that closes `instances`.
    end: usize,
}

fn invalid<T>(message: String) -> Result<T> {
    Err(InstancesError::Invalid(message))
}

struct Parser<'a> {
    cur: Cursor<'a>,
    features: &'a [String],
    index: &'a HashMap<String, usize>,
    values: Vec<f32>,
    rows: usize,
    /// Where another thread parses the rest of the rows, and how to get them.
    split: Option<(usize, JoinTail<'a>)>,
}

impl<'a> Parser<'a> {
    fn new(cur: Cursor<'a>, features: &'a [String], index: &'a HashMap<String, usize>) -> Self {
        Parser {
            cur,
            features,
            index,
            values: Vec::new(),
            rows: 0,
            split: None,
        }
    }

    fn width(&self) -> usize {
        self.features.len()
    }

    /// Fails on input that is not JSON at all; otherwise names the kind of value found.
    fn kind_or_syntax(&mut self, what: &str) -> Result<&'static str> {
        self.cur.kind().ok_or_else(|| self.cur.syntax(what).into())
    }

    fn body(&mut self) -> Result<()> {
        if self.cur.peek() != Some(b'{') {
            let kind = self.kind_or_syntax("a JSON value")?;
            return invalid(format!(
                "the body is {kind}; it must be {{\"instances\": [...]}}"
            ));
        }
        self.cur.pos += 1;
        let mut seen = false;
        if !self.cur.empty(b'}') {
            loop {
                let key = self.cur.string()?;
                self.cur.expect(b':', "`:`")?;
                match key.as_ref() {
                    "instances" if !seen => {
                        seen = true;
                        self.rows()?;
                    }
                    "instances" => return invalid("instances is given twice".into()),
                    // TensorFlow Serving clients send it; there is one signature here.
                    "signature_name" => self.cur.skip_value(0)?,
                    other => {
                        return invalid(format!(
                            "unexpected field {other:?}; the body is {{\"instances\": [...]}}"
                        ))
                    }
                }
                if !self.cur.more(b'}', "`,` or `}`")? {
                    break;
                }
            }
        }
        if !seen {
            return invalid("the body needs an \"instances\" array of rows".into());
        }
        if self.cur.peek().is_some() {
            return Err(self
                .cur
                .syntax("the end of the body after the object")
                .into());
        }
        Ok(())
    }

    fn rows(&mut self) -> Result<()> {
        if self.cur.peek() != Some(b'[') {
            let kind = self.kind_or_syntax("a JSON value")?;
            return invalid(format!("instances is {kind}; it must be an array of rows"));
        }
        self.cur.pos += 1;
        if self.cur.empty(b']') {
            return Ok(());
        }
        loop {
            let start = self.cur.pos;
            self.row()?;
            if self.rows == 1 {
                self.reserve_like(self.cur.pos - start);
            }
            if !self.cur.more(b']', "`,` or `]` after a row")? {
                return Ok(());
            }
            if self.cur.peek().is_some()
                && self
                    .split
                    .as_ref()
                    .is_some_and(|(at, _)| *at == self.cur.pos)
            {
                let (_, tail) = self.split.take().expect("just checked");
                if let Some(tail) = tail() {
                    self.values.extend_from_slice(&tail.values);
                    self.rows += tail.rows;
                    self.cur.pos = tail.end;
                    return Ok(());
                }
            }
        }
    }

    /// Room for as many more rows as the rest of the body holds if they are as long as
    /// the first (`row_bytes`), but never more values than the rest could hold (each value
    /// takes at least a digit and a separator).
    fn reserve_like(&mut self, row_bytes: usize) {
        let rest = self.cur.text.len() - self.cur.pos;
        let guess = (rest / row_bytes.max(1) + 1) * self.width();
        self.values.reserve(guess.min(rest / 2 + self.width()));
    }

    fn row(&mut self) -> Result<()> {
        match self.cur.peek() {
            Some(b'[') => self.array_row()?,
            Some(b'{') => self.object_row()?,
            _ => {
                let kind = self.kind_or_syntax("a row")?;
                return invalid(format!(
                    "instances[{}] is {kind}; a row is an array of numbers or an object \
                     keyed by feature name",
                    self.rows
                ));
            }
        }
        self.rows += 1;
        Ok(())
    }

    /// A number, or a 422 naming the value (`path`) when it is some other JSON value or
    /// outside the f32 range.
    #[inline(always)]
    fn value(&mut self, path: impl Fn() -> String) -> Result<f32> {
        match self.cur.peek() {
            Some(b'-' | b'0'..=b'9') => match self.cur.number() {
                Ok(v) => Ok(v),
                Err(ScanError::Range) => invalid(format!("{} is outside the f32 range", path())),
                Err(e) => Err(e.into()),
            },
            _ => {
                let kind = self.kind_or_syntax("a number")?;
                invalid(format!("{} is {kind}, not a number", path()))
            }
        }
    }

    fn array_row(&mut self) -> Result<()> {
        self.cur.pos += 1;
        let start = self.values.len();
        self.values.resize(start + self.width(), 0.0);
        let fast = decimal::plain_row(
            self.cur.text,
            self.cur.pos,
            b',',
            b']',
            &mut self.values[start..],
        );
        if let Some(end) = fast {
            self.cur.pos = end;
            return Ok(());
        }
        self.values.truncate(start);
        let (row, width) = (self.rows, self.width());
        let mut got = 0;
        if !self.cur.empty(b']') {
            loop {
                let value = self.value(|| format!("instances[{row}][{got}]"))?;
                if got < width {
                    self.values.push(value);
                }
                got += 1;
                if !self.cur.more(b']', "`,` or `]` in a row")? {
                    break;
                }
            }
        }
        if got != width {
            return invalid(format!(
                "instances[{row}] has {got} values, the model expects {width} ({})",
                self.features.join(", ")
            ));
        }
        Ok(())
    }

    fn object_row(&mut self) -> Result<()> {
        self.cur.pos += 1;
        let (row, width) = (self.rows, self.width());
        let start = self.values.len();
        // NaN marks "not given yet": JSON numbers never parse to NaN.
        self.values.resize(start + width, f32::NAN);
        if !self.cur.empty(b'}') {
            loop {
                let name = self.cur.string()?;
                self.cur.expect(b':', "`:`")?;
                let Some(&column) = self.index.get(name.as_ref()) else {
                    return invalid(format!(
                        "instances[{row}] has unknown feature {name:?}; the features are {:?}",
                        self.features
                    ));
                };
                let value = self.value(|| format!("instances[{row}].{name}"))?;
                let slot = &mut self.values[start + column];
                if !slot.is_nan() {
                    return invalid(format!("instances[{row}] gives feature {name:?} twice"));
                }
                *slot = value;
                if !self.cur.more(b'}', "`,` or `}` in a row")? {
                    break;
                }
            }
        }
        if let Some(missing) = self.values[start..].iter().position(|v| v.is_nan()) {
            return invalid(format!(
                "instances[{row}] lacks feature {:?}; the model expects {width} ({})",
                self.features[missing],
                self.features.join(", ")
            ));
        }
        Ok(())
    }
}
