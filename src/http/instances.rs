//! Parsing `{"instances": [...]}` straight into one flat f32 buffer, one pass, no
//! intermediate JSON tree: rows are arrays in feature order or objects keyed by feature name.

use std::collections::HashMap;
use std::fmt;

use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};

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

pub fn parse(
    body: &[u8],
    features: &[String],
    index: &HashMap<String, usize>,
) -> Result<Instances, InstancesError> {
    let mut state = State {
        features,
        index,
        values: Vec::new(),
        rows: 0,
        problem: None,
    };
    let mut deserializer = serde_json::Deserializer::from_slice(body);
    let parsed = Body(&mut state)
        .deserialize(&mut deserializer)
        .and_then(|()| deserializer.end());
    match parsed {
        Ok(()) if state.rows == 0 => Err(InstancesError::Invalid("instances is empty".into())),
        Ok(()) => Ok(Instances {
            values: state.values,
            rows: state.rows,
        }),
        Err(err) => Err(match state.problem {
            Some(problem) => InstancesError::Invalid(problem),
            None if err.is_data() => InstancesError::Invalid(err.to_string()),
            None => InstancesError::Malformed(err.to_string()),
        }),
    }
}

struct State<'a> {
    features: &'a [String],
    index: &'a HashMap<String, usize>,
    values: Vec<f32>,
    rows: usize,
    /// Our own complaint, kept because serde_json's error only carries text.
    problem: Option<String>,
}

impl State<'_> {
    fn invalid<E: de::Error>(&mut self, message: String) -> E {
        let err = E::custom(&message);
        self.problem = Some(message);
        err
    }

    fn width(&self) -> usize {
        self.features.len()
    }
}

struct Body<'s, 'a>(&'s mut State<'a>);

impl<'de> DeserializeSeed<'de> for Body<'_, '_> {
    type Value = ();

    fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for Body<'_, '_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an object with an \"instances\" array")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let mut seen = false;
        while let Some(key) = map.next_key::<String>()? {
            match key.as_str() {
                "instances" if !seen => {
                    seen = true;
                    map.next_value_seed(Rows(&mut *self.0))?;
                }
                // TensorFlow Serving clients send it; there is one signature here.
                "signature_name" => {
                    map.next_value::<IgnoredAny>()?;
                }
                other => {
                    return Err(self.0.invalid(format!(
                        "unexpected field {other:?}; the body is {{\"instances\": [...]}}"
                    )))
                }
            }
        }
        if !seen {
            return Err(self
                .0
                .invalid("the body needs an \"instances\" array of rows".into()));
        }
        Ok(())
    }
}

struct Rows<'s, 'a>(&'s mut State<'a>);

impl<'de> DeserializeSeed<'de> for Rows<'_, '_> {
    type Value = ();

    fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for Rows<'_, '_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an array of rows")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        if let Some(rows) = seq.size_hint() {
            self.0.values.reserve(rows * self.0.width());
        }
        while seq.next_element_seed(Row(&mut *self.0))?.is_some() {}
        Ok(())
    }
}

struct Row<'s, 'a>(&'s mut State<'a>);

impl<'de> DeserializeSeed<'de> for Row<'_, '_> {
    type Value = ();

    fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Row<'_, '_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(
            f,
            "instances[{}]: an array of numbers or an object keyed by feature name",
            self.0.rows
        )
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let state = self.0;
        let (row, width) = (state.rows, state.width());
        let mut got = 0;
        while let Some(value) = seq.next_element::<f32>()? {
            if !value.is_finite() {
                return Err(
                    state.invalid(format!("instances[{row}][{got}] is outside the f32 range"))
                );
            }
            if got < width {
                state.values.push(value);
            }
            got += 1;
        }
        if got != width {
            return Err(state.invalid(format!(
                "instances[{row}] has {got} values, the model expects {width} ({})",
                state.features.join(", ")
            )));
        }
        state.rows += 1;
        Ok(())
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let state = self.0;
        let (row, width) = (state.rows, state.width());
        let start = state.values.len();
        // NaN marks "not given yet": JSON numbers never parse to NaN.
        state.values.resize(start + width, f32::NAN);
        while let Some(name) = map.next_key::<String>()? {
            let Some(&column) = state.index.get(&name) else {
                return Err(state.invalid(format!(
                    "instances[{row}] has unknown feature {name:?}; the features are {:?}",
                    state.features
                )));
            };
            let value: f32 = map.next_value()?;
            if !value.is_finite() {
                return Err(
                    state.invalid(format!("instances[{row}].{name} is outside the f32 range"))
                );
            }
            if !state.values[start + column].is_nan() {
                return Err(state.invalid(format!("instances[{row}] gives feature {name:?} twice")));
            }
            state.values[start + column] = value;
        }
        if let Some(missing) = state.values[start..].iter().position(|v| v.is_nan()) {
            return Err(state.invalid(format!(
                "instances[{row}] lacks feature {:?}; the model expects {width} ({})",
                state.features[missing],
                state.features.join(", ")
            )));
        }
        state.rows += 1;
        Ok(())
    }
}
