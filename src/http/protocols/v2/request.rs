//! An inference request as the Open Inference Protocol sends it: a JSON header, then
//! with the binary tensor extension each input's raw bytes in input order
//! (`Inference-Header-Content-Length` says where the header ends); and each input
//! decoded into values.

use axum::http::HeaderMap;
use serde::de::{self, DeserializeSeed, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer};

use crate::http::error::Error;

pub(super) const HEADER_LENGTH: &str = "inference-header-content-length";

#[derive(Deserialize)]
pub(super) struct InferRequest {
    pub id: Option<String>,
    #[serde(default)]
    pub parameters: Parameters,
    pub inputs: Vec<InputTensor>,
    #[serde(default)]
    pub outputs: Vec<RequestedOutput>,
}

/// The parameters this service reads; others (`content_type`, as MLServer's codecs
/// send it) are accepted and ignored.
#[derive(Default, Deserialize)]
pub(super) struct Parameters {
    /// On a request: every output in binary, unless an output says otherwise.
    pub binary_data_output: Option<bool>,
    /// On a requested output: this output in binary.
    pub binary_data: Option<bool>,
    /// On an input: its data is this many bytes after the header, not `data`.
    pub binary_data_size: Option<usize>,
}

#[derive(Deserialize)]
pub(super) struct InputTensor {
    pub name: String,
    pub shape: Vec<i64>,
    pub datatype: String,
    #[serde(default)]
    pub parameters: Parameters,
    pub data: Option<Flat>,
}

#[derive(Deserialize)]
pub(super) struct RequestedOutput {
    pub name: String,
    #[serde(default)]
    pub parameters: Parameters,
}

/// One input, decoded: its values in row-major order.
pub(super) struct Tensor {
    pub name: String,
    pub shape: Vec<usize>,
    pub values: Values,
}

pub(super) enum Values {
    /// NaN for a JSON `null` (a missing value): JSON numbers are never NaN.
    Numbers(Vec<f32>),
    Texts(Vec<Option<String>>),
}

impl Values {
    pub fn len(&self) -> usize {
        match self {
            Values::Numbers(v) => v.len(),
            Values::Texts(v) => v.len(),
        }
    }
}

/// A tensor's JSON `data`, flat or nested, read in row-major order without building a
/// JSON tree (a bulk request's data is millions of numbers).
pub(super) struct Flat(Values);

impl<'de> Deserialize<'de> for Flat {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let mut values = Values::Numbers(Vec::new());
        deserializer.deserialize_any(Append(&mut values))?;
        Ok(Flat(values))
    }
}

/// Appends a value, or the values of a nested array, to the flat data.
struct Append<'a>(&'a mut Values);

impl Append<'_> {
    fn number<E: de::Error>(self, value: f32) -> Result<(), E> {
        match self.0 {
            Values::Numbers(numbers) => {
                numbers.push(value);
                Ok(())
            }
            Values::Texts(_) => Err(E::custom("data mixes text and numbers")),
        }
    }
}

impl<'de> DeserializeSeed<'de> for Append<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Append<'_> {
    type Value = ();

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("numbers, texts or null, flat or in nested arrays")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while seq.next_element_seed(Append(self.0))?.is_some() {}
        Ok(())
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<(), E> {
        self.number(v as f32)
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<(), E> {
        self.number(v as f32)
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<(), E> {
        self.number(v as f32)
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<(), E> {
        self.number(f32::from(u8::from(v)))
    }

    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        match self.0 {
            Values::Numbers(numbers) => numbers.push(f32::NAN),
            Values::Texts(texts) => texts.push(None),
        }
        Ok(())
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<(), E> {
        if let Values::Numbers(numbers) = self.0 {
            // Only missing values so far: the tensor is text after all.
            if numbers.iter().any(|n| !n.is_nan()) {
                return Err(E::custom("data mixes numbers and text"));
            }
            *self.0 = Values::Texts(vec![None; numbers.len()]);
        }
        if let Values::Texts(texts) = self.0 {
            texts.push(Some(v.to_owned()));
        }
        Ok(())
    }
}

/// The request's header and its inputs, decoded.
pub(super) fn read(headers: &HeaderMap, body: &[u8]) -> Result<(InferRequest, Vec<Tensor>), Error> {
    let bad = Error::BadRequest;
    let header_length = match headers.get(HEADER_LENGTH) {
        None => body.len(),
        Some(value) => value
            .to_str()
            .ok()
            .and_then(|v| v.trim().parse::<usize>().ok())
            .filter(|&n| n <= body.len())
            .ok_or_else(|| {
                bad(format!(
                    "Inference-Header-Content-Length must be the JSON header's length in \
                     bytes, at most the body's {}; got {value:?}",
                    body.len()
                ))
            })?,
    };
    let (json, mut rest) = body.split_at(header_length);
    let mut request: InferRequest = serde_json::from_slice(json)
        .map_err(|e| bad(format!("the inference request is not valid: {e}")))?;
    let mut tensors = Vec::with_capacity(request.inputs.len());
    for input in &mut request.inputs {
        let shape = input
            .shape
            .iter()
            .map(|&d| usize::try_from(d).ok())
            .collect::<Option<Vec<usize>>>()
            .ok_or_else(|| {
                bad(format!(
                    "input {:?} has the shape {:?}: a request's dimensions are known",
                    input.name, input.shape
                ))
            })?;
        let count = shape
            .iter()
            .try_fold(1usize, |n, &d| n.checked_mul(d))
            .filter(|&n| n <= body.len())
            .ok_or_else(|| {
                bad(format!(
                    "input {:?} has the shape {shape:?}, more values than the body could hold",
                    input.name
                ))
            })?;
        let values = match (input.parameters.binary_data_size, input.data.take()) {
            (Some(size), _) => {
                if size > rest.len() {
                    return Err(bad(format!(
                        "input {:?} has binary_data_size {size}, but only {} bytes follow",
                        input.name,
                        rest.len()
                    )));
                }
                let (bytes, after) = rest.split_at(size);
                rest = after;
                decode(&input.name, &input.datatype, bytes, count)?
            }
            (None, Some(Flat(values))) => json_values(&input.name, &input.datatype, values)?,
            (None, None) => {
                return Err(bad(format!(
                    "input {:?} has neither data nor binary_data_size",
                    input.name
                )))
            }
        };
        if values.len() != count {
            return Err(bad(format!(
                "input {:?} has {} values, its shape {shape:?} needs {count}",
                input.name,
                values.len()
            )));
        }
        tensors.push(Tensor {
            name: input.name.clone(),
            shape,
            values,
        });
    }
    if !rest.is_empty() {
        return Err(bad(format!(
            "{} bytes follow the inputs' binary data: the binary_data_size of the inputs do \
             not add up to the body",
            rest.len()
        )));
    }
    Ok((request, tensors))
}

fn unsupported(name: &str, datatype: &str) -> Error {
    Error::BadRequest(format!(
        "input {name:?} has the datatype {datatype:?}; nnserve takes FP32, FP64, INT32, INT64 \
         and BYTES"
    ))
}

fn json_values(name: &str, datatype: &str, values: Values) -> Result<Values, Error> {
    match (datatype, values) {
        ("FP32" | "FP64" | "INT32" | "INT64", Values::Numbers(v)) => Ok(Values::Numbers(v)),
        ("BYTES", Values::Texts(v)) => Ok(Values::Texts(v)),
        ("BYTES", Values::Numbers(v)) if v.iter().all(|n| n.is_nan()) => {
            Ok(Values::Texts(vec![None; v.len()]))
        }
        ("FP32" | "FP64" | "INT32" | "INT64" | "BYTES", _) => Err(Error::BadRequest(format!(
            "input {name:?}: the data of a {datatype} tensor are {}",
            if datatype == "BYTES" {
                "texts"
            } else {
                "numbers"
            }
        ))),
        _ => Err(unsupported(name, datatype)),
    }
}

/// Raw little-endian values; a BYTES element is its length (4 bytes, little-endian) and
/// its bytes.
fn decode(name: &str, datatype: &str, bytes: &[u8], count: usize) -> Result<Values, Error> {
    let width = match datatype {
        "FP32" | "INT32" => 4,
        "FP64" | "INT64" => 8,
        "BYTES" => return texts(name, bytes).map(Values::Texts),
        _ => return Err(unsupported(name, datatype)),
    };
    if bytes.len() != count * width {
        return Err(Error::BadRequest(format!(
            "input {name:?} has {} bytes of binary data; {count} {datatype} values are {}",
            bytes.len(),
            count * width
        )));
    }
    let values = bytes.chunks_exact(width);
    let numbers = match datatype {
        "FP32" => values
            .map(|b| f32::from_le_bytes(b.try_into().expect("4 bytes")))
            .collect(),
        "INT32" => values
            .map(|b| i32::from_le_bytes(b.try_into().expect("4 bytes")) as f32)
            .collect(),
        "FP64" => values
            .map(|b| f64::from_le_bytes(b.try_into().expect("8 bytes")) as f32)
            .collect(),
        _ => values
            .map(|b| i64::from_le_bytes(b.try_into().expect("8 bytes")) as f32)
            .collect(),
    };
    Ok(Values::Numbers(numbers))
}

fn texts(name: &str, mut bytes: &[u8]) -> Result<Vec<Option<String>>, Error> {
    let bad = |why: &str| Error::BadRequest(format!("input {name:?}: {why}"));
    let mut texts = Vec::new();
    while !bytes.is_empty() {
        let (length, rest) = bytes
            .split_first_chunk::<4>()
            .ok_or_else(|| bad("a BYTES element's 4-byte length is cut short"))?;
        let length = u32::from_le_bytes(*length) as usize;
        if length > rest.len() {
            return Err(bad("a BYTES element is longer than the data left"));
        }
        let (text, rest) = rest.split_at(length);
        let text = std::str::from_utf8(text).map_err(|_| bad("a BYTES element is not UTF-8"))?;
        texts.push(Some(text.to_owned()));
        bytes = rest;
    }
    Ok(texts)
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn binary(header: &str, data: &[u8]) -> (HeaderMap, Vec<u8>) {
        let mut headers = HeaderMap::new();
        headers.insert(HEADER_LENGTH, HeaderValue::from(header.len()));
        (headers, [header.as_bytes(), data].concat())
    }

    #[test]
    fn nested_and_flat_data_read_alike() {
        let read_data = |data: &str| {
            let body = format!(
                r#"{{"inputs": [{{"name": "x", "shape": [2, 2], "datatype": "FP32", "data": {data}}}]}}"#
            );
            match read(&HeaderMap::new(), body.as_bytes())
                .unwrap()
                .1
                .remove(0)
                .values
            {
                Values::Numbers(v) => v,
                Values::Texts(_) => panic!("numbers"),
            }
        };
        assert_eq!(read_data("[[1, 2.5], [3, -4]]"), vec![1.0, 2.5, 3.0, -4.0]);
        assert_eq!(read_data("[1, 2.5, 3, -4]"), vec![1.0, 2.5, 3.0, -4.0]);
    }

    #[test]
    fn binary_inputs_decode_little_endian() {
        let numbers: Vec<u8> = [1.5f32, -2.0]
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect();
        let texts = [&3u32.to_le_bytes()[..], b"pro", &0u32.to_le_bytes()].concat();
        let header = format!(
            r#"{{"inputs": [{{"name": "a", "shape": [2], "datatype": "FP32", "parameters": {{"binary_data_size": 8}}}},
                {{"name": "b", "shape": [2], "datatype": "BYTES", "parameters": {{"binary_data_size": {}}}}}]}}"#,
            texts.len()
        );
        let (headers, body) = binary(&header, &[numbers, texts].concat());
        let (_, tensors) = read(&headers, &body).unwrap();
        assert!(matches!(&tensors[0].values, Values::Numbers(v) if v == &[1.5, -2.0]));
        assert!(
            matches!(&tensors[1].values, Values::Texts(v) if v == &[Some("pro".into()), Some(String::new())])
        );
    }

    #[test]
    fn lengths_that_do_not_add_up_are_refused() {
        let header = r#"{"inputs": [{"name": "a", "shape": [2], "datatype": "FP32", "parameters": {"binary_data_size": 8}}]}"#;
        let (headers, body) = binary(header, &[0; 4]);
        assert!(read(&headers, &body).is_err());
        let (headers, body) = binary(header, &[0; 12]);
        assert!(read(&headers, &body).is_err());
        let mut huge = HeaderMap::new();
        huge.insert(
            HEADER_LENGTH,
            HeaderValue::from_static("99999999999999999999"),
        );
        assert!(read(&huge, header.as_bytes()).is_err());
        let shape = r#"{"inputs": [{"name": "a", "shape": [4294967296, 4294967296], "datatype": "FP32", "data": []}]}"#;
        assert!(read(&HeaderMap::new(), shape.as_bytes()).is_err());
    }
}
