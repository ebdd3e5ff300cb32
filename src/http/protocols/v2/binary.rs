//! The inference answer: a JSON header, then with the binary tensor extension the raw
//! little-endian data of each binary output in output order (a BYTES element as its
//! 4-byte length and its bytes), `Inference-Header-Content-Length` telling where the
//! header ends.

use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use serde::{Serialize, Serializer};

use super::infer::{Data, Output};
use super::request::HEADER_LENGTH;

#[derive(Serialize)]
struct Answer<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    id: Option<&'a str>,
    model_name: &'a str,
    model_version: String,
    outputs: Vec<OutputHeader<'a>>,
}

#[derive(Serialize)]
struct OutputHeader<'a> {
    name: &'static str,
    datatype: &'static str,
    shape: &'a [usize],
    #[serde(skip_serializing_if = "Option::is_none")]
    parameters: Option<BinarySize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    data: Option<&'a Data<'a>>,
}

#[derive(Serialize)]
struct BinarySize {
    binary_data_size: usize,
}

impl Serialize for Data<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Data::Floats(v) => v.serialize(serializer),
            Data::Indices(v) => v.serialize(serializer),
            Data::Texts(v) => v.serialize(serializer),
        }
    }
}

impl Data<'_> {
    fn write_binary(&self, out: &mut Vec<u8>) {
        match self {
            Data::Floats(v) => out.extend(v.iter().flat_map(|x| x.to_le_bytes())),
            Data::Indices(v) => out.extend(v.iter().flat_map(|&i| (i as i64).to_le_bytes())),
            Data::Texts(v) => {
                for text in *v {
                    out.extend_from_slice(&(text.len() as u32).to_le_bytes());
                    out.extend_from_slice(text.as_bytes());
                }
            }
        }
    }
}

/// The answer to an inference request.
pub(super) fn answer(
    id: Option<&str>,
    model_name: &str,
    model_version: u32,
    outputs: &[Output<'_>],
) -> Response {
    let mut blob = Vec::new();
    let headers: Vec<OutputHeader<'_>> = outputs
        .iter()
        .map(|output| {
            let (parameters, data) = if output.binary {
                let start = blob.len();
                output.data.write_binary(&mut blob);
                let binary_data_size = blob.len() - start;
                (Some(BinarySize { binary_data_size }), None)
            } else {
                (None, Some(&output.data))
            };
            OutputHeader {
                name: output.name,
                datatype: output.data.datatype(),
                shape: &output.shape,
                parameters,
                data,
            }
        })
        .collect();
    let header_json = serde_json::to_vec(&Answer {
        id,
        model_name,
        model_version: model_version.to_string(),
        outputs: headers,
    })
    .expect("the answer serializes");
    if !outputs.iter().any(|o| o.binary) {
        return ([(header::CONTENT_TYPE, "application/json")], header_json).into_response();
    }
    let length = header_json.len();
    let mut body = header_json;
    body.extend_from_slice(&blob);
    let mut response = ([(header::CONTENT_TYPE, "application/octet-stream")], body).into_response();
    response
        .headers_mut()
        .insert(HEADER_LENGTH, HeaderValue::from(length));
    response
}
