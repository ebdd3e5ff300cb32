//! The HTTP layer's one error type, answered as RFC 7807 `application/problem+json`.

use axum::extract::rejection::{BytesRejection, JsonRejection, PathRejection, QueryRejection};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

use crate::ingest::IngestError;
use crate::jobs::{CancelError, SubmitError};
use crate::nn::{ModelError, SpecError};
use crate::onnx::ExportError;
use crate::serving::LoadError;
use crate::store::StoreError;

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    Unprocessable(String),
    #[error("{0}")]
    Conflict(String),
    /// A route this service does not have (TensorFlow Serving's unknown verbs).
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    UnsupportedMediaType(String),
    #[error("{0}")]
    Unavailable(String),
    #[error("{0}")]
    Json(String, StatusCode),
    /// No key, or one that is not configured.
    #[error("{0}")]
    Unauthorized(String),
    /// A predict key on an endpoint it may not use.
    #[error("{0}")]
    Forbidden(String),
    #[error("the request took longer than {0} s (--request-timeout-seconds)")]
    Timeout(u64),
    #[error("{limit} requests are being served (--max-concurrent-requests); retry shortly")]
    Overloaded { limit: usize },
    #[error(transparent)]
    Submit(#[from] SubmitError),
    /// A predict request whose working memory would exceed the limit.
    #[error("{0}")]
    TooLarge(String),
    #[error("{0}")]
    Path(#[from] PathRejection),
    #[error("{0}")]
    Query(#[from] QueryRejection),
    #[error(transparent)]
    Ingest(#[from] IngestError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Spec(#[from] SpecError),
    #[error(transparent)]
    Cancel(#[from] CancelError),
    #[error(transparent)]
    Load(#[from] LoadError),
    #[error(transparent)]
    Model(#[from] ModelError),
    #[error(transparent)]
    Export(#[from] ExportError),
    #[error("{0}")]
    Internal(String),
}

impl From<JsonRejection> for Error {
    fn from(rejection: JsonRejection) -> Self {
        Self::Json(rejection.body_text(), rejection.status())
    }
}

impl From<BytesRejection> for Error {
    fn from(rejection: BytesRejection) -> Self {
        Self::Json(rejection.body_text(), rejection.status())
    }
}

impl Error {
    fn status(&self) -> StatusCode {
        match self {
            Self::BadRequest(_) | Self::Query(_) | Self::Path(_) => StatusCode::BAD_REQUEST,
            Self::Unprocessable(_) => StatusCode::UNPROCESSABLE_ENTITY,
            Self::Conflict(_) => StatusCode::CONFLICT,
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            Self::Json(_, status) => *status,
            Self::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            Self::Forbidden(_) => StatusCode::FORBIDDEN,
            Self::Timeout(_) => StatusCode::REQUEST_TIMEOUT,
            Self::Overloaded { .. } => StatusCode::SERVICE_UNAVAILABLE,
            Self::Submit(SubmitError::QueueFull { .. }) => StatusCode::TOO_MANY_REQUESTS,
            Self::Submit(SubmitError::TooLarge { .. }) | Self::TooLarge(_) => {
                StatusCode::UNPROCESSABLE_ENTITY
            }
            Self::Submit(SubmitError::Store(err)) => store_status(err),
            Self::Ingest(err) => match err {
                IngestError::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
                IngestError::Empty
                | IngestError::BadName(_)
                | IngestError::Csv(_)
                | IngestError::Body(_)
                | IngestError::NotParquet(_)
                | IngestError::Parquet(_)
                | IngestError::UnknownTarget { .. }
                | IngestError::UnknownTypedColumn { .. }
                | IngestError::DuplicateTarget(_) => StatusCode::BAD_REQUEST,
                IngestError::Store(err) => store_status(err),
                IngestError::Aborted | IngestError::Spool(_) => StatusCode::INTERNAL_SERVER_ERROR,
                _ => StatusCode::UNPROCESSABLE_ENTITY,
            },
            Self::Store(err)
            | Self::Load(LoadError::Store(err))
            | Self::Cancel(CancelError::Store(err)) => store_status(err),
            Self::Spec(_) => StatusCode::UNPROCESSABLE_ENTITY,
            Self::Cancel(CancelError::Finished { .. }) => StatusCode::CONFLICT,
            Self::Model(ModelError::OutOfMemory(_)) => StatusCode::SERVICE_UNAVAILABLE,
            Self::Model(ModelError::Corrupt(_))
            | Self::Load(LoadError::Model { .. })
            | Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
            Self::Model(_) | Self::Export(_) => StatusCode::UNPROCESSABLE_ENTITY,
        }
    }
}

fn store_status(err: &StoreError) -> StatusCode {
    match err {
        StoreError::NotFound { .. } | StoreError::Missing(_) => StatusCode::NOT_FOUND,
        StoreError::DatasetInUse { .. } | StoreError::Aliased(_) => StatusCode::CONFLICT,
        err if err.is_unavailable() => StatusCode::SERVICE_UNAVAILABLE,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

/// An RFC 7807 problem document.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"type": "about:blank", "title": "Unprocessable Entity", "status": 422,
    "detail": "line 3, column 2 (\"b\"): \"x\" is not a number"}))]
pub struct Problem {
    /// Always "about:blank": the status code says what kind of problem it is.
    #[serde(rename = "type")]
    pub kind: String,
    pub title: String,
    pub status: u16,
    /// What is wrong, naming the field or value at fault.
    pub detail: String,
}

impl Error {
    /// What the client is told: a server error's cause may reveal internals, so it is
    /// logged and the client told only that it happened.
    fn detail(&self, status: StatusCode) -> String {
        if !status.is_server_error() {
            return self.to_string();
        }
        tracing::error!(error = %self, "request failed");
        match self {
            Self::Unavailable(_) => {
                "the service is not ready: its database is unreachable".to_owned()
            }
            Self::Overloaded { .. } | Self::Model(ModelError::OutOfMemory(_)) => self.to_string(),
            _ => "an internal error occurred; the server log has the details".to_owned(),
        }
    }

    fn add_headers(&self, response: &mut Response) {
        let headers = response.headers_mut();
        match self {
            Self::Unauthorized(_) => {
                headers.insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static("Bearer realm=\"nnserve\""),
                );
            }
            Self::Submit(SubmitError::QueueFull {
                retry_after_seconds,
                ..
            }) => {
                headers.insert(header::RETRY_AFTER, HeaderValue::from(*retry_after_seconds));
            }
            Self::Overloaded { .. } | Self::Model(ModelError::OutOfMemory(_)) => {
                headers.insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            }
            _ => {}
        }
    }
}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        let status = self.status();
        let problem = Problem {
            kind: "about:blank".into(),
            title: status.canonical_reason().unwrap_or("Error").into(),
            status: status.as_u16(),
            detail: self.detail(status),
        };
        let mut response = (
            status,
            [(header::CONTENT_TYPE, "application/problem+json")],
            axum::Json(problem),
        )
            .into_response();
        self.add_headers(&mut response);
        response
    }
}

/// An error of the TensorFlow Serving and Open Inference Protocol routes, answered as
/// their clients expect: `{"error": "…"}` as `application/json`. A request the service
/// understood but cannot use is a 400 there (TF Serving's INVALID_ARGUMENT), not a 422.
#[derive(Debug)]
pub struct ProtocolError(pub Error);

impl<E: Into<Error>> From<E> for ProtocolError {
    fn from(error: E) -> Self {
        Self(error.into())
    }
}

/// The body of a TensorFlow Serving or Open Inference Protocol error.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"error": "instances[0] has 3 values, the model expects 4 (x0, x1, x2, x3)"}))]
pub struct ProtocolErrorBody {
    pub error: String,
}

impl IntoResponse for ProtocolError {
    fn into_response(self) -> Response {
        let status = match self.0.status() {
            StatusCode::UNPROCESSABLE_ENTITY => StatusCode::BAD_REQUEST,
            status => status,
        };
        let body = ProtocolErrorBody {
            error: self.0.detail(status),
        };
        let mut response = (
            status,
            [(header::CONTENT_TYPE, "application/json")],
            axum::Json(body),
        )
            .into_response();
        self.0.add_headers(&mut response);
        response
    }
}
