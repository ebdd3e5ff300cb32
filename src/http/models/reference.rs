//! The model a request's path names: `/models/{ref}/…` (a model id, a name for its latest
//! version, or `name@alias`) and `/models/{name}/versions/{version}/…`. Every model
//! handler takes [`Resolved`], so both mounts of the model routes share one handler each.

use std::collections::HashMap;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use serde::Deserialize;
use utoipa::IntoParams;
use uuid::Uuid;

use crate::http::error::Error;
use crate::http::extract::Path;
use crate::http::AppState;
use crate::store::ModelRef;

/// Where the model routes are mounted: by reference, and by name and version.
pub const BY_REF: &str = "/models/{ref}";
pub const BY_VERSION: &str = "/models/{name}/versions/{version}";

/// The model of the request, resolved once when the request starts: the request then
/// answers from this id even if an alias moves (or a newer version appears) meanwhile.
pub struct Resolved {
    pub id: Uuid,
    /// As the path named it.
    pub reference: ModelRef,
}

impl FromRequestParts<AppState> for Resolved {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Error> {
        let Path(params) =
            Path::<HashMap<String, String>>::from_request_parts(parts, state).await?;
        let reference = match (params.get("name"), params.get("version"), params.get("ref")) {
            (Some(name), Some(version), _) => ModelRef::version(name, version),
            (_, _, Some(text)) | (Some(text), None, None) => ModelRef::parse(text),
            _ => return Err(Error::Internal("a model route without a model path".into())),
        }
        .map_err(|e| Error::BadRequest(e.to_string()))?;
        Resolved::of(state, reference).await
    }
}

impl Resolved {
    /// The model `reference` names now.
    pub async fn of(state: &AppState, reference: ModelRef) -> Result<Self, Error> {
        let id = state.models.resolve(&state.store, &reference).await?;
        Ok(Resolved { id, reference })
    }
}

/// The `{ref}` of a model route (documentation; [`Resolved`] reads it). The document's
/// copies of these routes under `/models/{name}/versions/{version}` take a name and a
/// version instead (see `openapi::versioned_routes`).
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
#[allow(dead_code)]
pub struct RefParam {
    /// The model: its id (a UUID), a name for that name's latest version (`churn`), or a
    /// name and an alias (`churn@champion`; `churn@latest` is the latest version).
    /// `/models/{name}/versions/{version}` names one version.
    #[serde(rename = "ref")]
    pub reference: String,
}
