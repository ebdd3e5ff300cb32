//! The recursive-descent reader of a predict body: the object, its `instances` array, and
//! each row, array or object, checked against the model's features.

use std::collections::HashMap;

use super::{invalid, Each, Form, Instances, JoinTail, Result};
use crate::parse::decimal;
use crate::parse::json_cursor::{CursorError, JsonCursor};

pub(super) struct Parser<'a, R> {
    pub cur: JsonCursor<'a>,
    features: &'a [String],
    index: &'a HashMap<String, usize>,
    /// Runs on each part of the rows once they are parsed; its results in row order.
    each: &'a Each<'a, R>,
    pub parts: Vec<R>,
    /// Rows parsed so far, and the values of those not yet handed to `each`.
    pub rows: usize,
    pub values: Vec<f32>,
    /// Where another thread parses the rest of the rows, and how to get them.
    pub split: Option<(usize, JoinTail<'a, R>)>,
    /// Whether TensorFlow Serving's columnar `inputs` may stand for `instances`.
    pub columnar: bool,
    /// The key the rows came under, once read.
    pub form: Option<Form>,
}

impl<'a, R> Parser<'a, R> {
    pub fn new(
        cur: JsonCursor<'a>,
        features: &'a [String],
        index: &'a HashMap<String, usize>,
        each: &'a Each<'a, R>,
    ) -> Self {
        Parser {
            cur,
            features,
            index,
            each,
            parts: Vec::new(),
            rows: 0,
            values: Vec::new(),
            split: None,
            columnar: false,
            form: None,
        }
    }

    /// Hands the rows parsed since the last part to `each`, with how many parts are being
    /// worked on at once.
    pub fn emit(&mut self, concurrent: usize) {
        if self.values.is_empty() {
            return;
        }
        let values = std::mem::take(&mut self.values);
        let rows = values.len() / self.width();
        self.parts
            .push((self.each)(Instances { values, rows }, concurrent));
    }

    fn width(&self) -> usize {
        self.features.len()
    }

    /// Fails on input that is not JSON at all; otherwise names the kind of value found.
    fn kind_or_syntax(&mut self, what: &str) -> Result<&'static str> {
        self.cur.kind().ok_or_else(|| self.cur.syntax(what).into())
    }

    pub fn body(&mut self) -> Result<()> {
        if self.cur.peek() != Some(b'{') {
            let kind = self.kind_or_syntax("a JSON value")?;
            return invalid(format!(
                "the body is {kind}; it must be {{\"instances\": [...]}}"
            ));
        }
        self.cur.pos += 1;
        let expected = if self.columnar {
            "{\"instances\": [...]} or {\"inputs\": ...}"
        } else {
            "{\"instances\": [...]}"
        };
        if !self.cur.empty(b'}') {
            loop {
                let key = self.cur.string()?;
                self.cur.expect(b':', "`:`")?;
                let form = match key.as_ref() {
                    "instances" => Some(Form::Instances),
                    "inputs" if self.columnar => Some(Form::Inputs),
                    // TensorFlow Serving clients send it; there is one signature here.
                    "signature_name" => None,
                    other => {
                        return invalid(format!(
                            "unexpected field {other:?}; the body is {expected}"
                        ))
                    }
                };
                match (form, self.form) {
                    (None, _) => self.cur.skip_value(0)?,
                    (Some(form), None) => {
                        self.form = Some(form);
                        match form {
                            Form::Inputs if self.cur.peek() == Some(b'{') => self.columns()?,
                            _ => self.rows()?,
                        }
                    }
                    (Some(form), Some(seen)) if form == seen => {
                        return invalid(format!("{} is given twice", form.key()))
                    }
                    (Some(_), Some(_)) => {
                        return invalid(
                            "the body has both \"instances\" and \"inputs\"; send one of them"
                                .into(),
                        )
                    }
                }
                if !self.cur.more(b'}', "`,` or `}`")? {
                    break;
                }
            }
        }
        if self.form.is_none() {
            return invalid(match self.columnar {
                true => "the body needs \"instances\" (rows) or \"inputs\" (columns)".into(),
                false => "the body needs an \"instances\" array of rows".into(),
            });
        }
        if self.cur.peek().is_some() {
            return Err(self
                .cur
                .syntax("the end of the body after the object")
                .into());
        }
        Ok(())
    }

    /// Columnar `inputs`: an object of one array of values per feature, all of one length.
    fn columns(&mut self) -> Result<()> {
        self.cur.pos += 1;
        let width = self.width();
        let mut columns: Vec<Option<Vec<f32>>> = vec![None; width];
        if !self.cur.empty(b'}') {
            loop {
                let name = self.cur.string()?;
                self.cur.expect(b':', "`:`")?;
                let Some(&column) = self.index.get(name.as_ref()) else {
                    return invalid(format!(
                        "inputs has unknown feature {name:?}; the features are {:?}",
                        self.features
                    ));
                };
                if columns[column].is_some() {
                    return invalid(format!("inputs gives feature {name:?} twice"));
                }
                columns[column] = Some(self.column(&name)?);
                if !self.cur.more(b'}', "`,` or `}` in inputs")? {
                    break;
                }
            }
        }
        let mut given = Vec::with_capacity(width);
        for (c, column) in columns.into_iter().enumerate() {
            match column {
                Some(values) => given.push(values),
                None => {
                    return invalid(format!(
                        "inputs lacks feature {:?}; the model expects {width} ({})",
                        self.features[c],
                        self.features.join(", ")
                    ))
                }
            }
        }
        let rows = given.first().map_or(0, Vec::len);
        if let Some(c) = given.iter().position(|values| values.len() != rows) {
            return invalid(format!(
                "inputs.{} has {} values, inputs.{} has {rows}: every feature needs one per row",
                self.features[c],
                given[c].len(),
                self.features[0]
            ));
        }
        self.values.reserve(rows * width);
        for r in 0..rows {
            self.values.extend(given.iter().map(|values| values[r]));
        }
        self.rows = rows;
        Ok(())
    }

    fn column(&mut self, name: &str) -> Result<Vec<f32>> {
        if self.cur.peek() != Some(b'[') {
            let kind = self.kind_or_syntax("a JSON value")?;
            return invalid(format!(
                "inputs.{name} is {kind}; it must be an array of one value per row"
            ));
        }
        self.cur.pos += 1;
        let mut values = Vec::new();
        if !self.cur.empty(b']') {
            loop {
                let at = values.len();
                values.push(self.value(|| format!("inputs.{name}[{at}]"))?);
                if !self.cur.more(b']', "`,` or `]` in a column")? {
                    break;
                }
            }
        }
        Ok(values)
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
                // This thread's rows are complete: their part runs while the other thread
                // finishes its own.
                self.emit(2);
                if let Some(tail) = tail() {
                    self.parts.push(tail.part);
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
    pub fn reserve_like(&mut self, row_bytes: usize) {
        let rest = self.cur.text.len() - self.cur.pos;
        let guess = (rest / row_bytes.max(1) + 1) * self.width();
        self.values.reserve(guess.min(rest / 2 + self.width()));
    }

    pub fn row(&mut self) -> Result<()> {
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
                Err(CursorError::Range) => invalid(format!("{} is outside the f32 range", path())),
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
