//! `/models/{name}/aliases`: the aliases of a model name (`churn@champion`), each pointing
//! at one version and moved in one statement.

use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;

use crate::http::error::{Error, Problem, Result};
use crate::http::extract::{Json, Path};
use crate::http::AppState;
use crate::store::{check_alias, check_slug, Alias};

pub(super) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_aliases))
        .routes(routes!(get_alias, set_alias, delete_alias))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AliasView {
    pub name: String,
    pub alias: String,
    /// The version it points at.
    pub version: u32,
    pub model_id: Uuid,
    /// How a model route names it: `name@alias`.
    pub reference: String,
    pub created_at: DateTime<Utc>,
    /// When it was last set or moved.
    pub updated_at: DateTime<Utc>,
    /// The version it pointed at before this `PUT` moved it; null when the `PUT` created
    /// it, and outside a `PUT`'s answer.
    pub previous_version: Option<u32>,
}

impl AliasView {
    fn new(alias: Alias, previous_version: Option<u32>) -> AliasView {
        AliasView {
            reference: format!("{}@{}", alias.name, alias.alias),
            name: alias.name,
            alias: alias.alias,
            version: alias.version,
            model_id: alias.model_id,
            created_at: alias.created_at,
            updated_at: alias.updated_at,
            previous_version,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AliasList {
    pub name: String,
    /// The highest version that still exists (what `/models/{name}` and `name@latest`
    /// name); null when every version was deleted.
    pub latest_version: Option<u32>,
    /// By alias.
    pub aliases: Vec<AliasView>,
}

/// The body of `PUT /models/{name}/aliases/{alias}`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"version": 3}))]
pub struct SetAlias {
    /// The version of the name to point at, from 1.
    #[schema(minimum = 1)]
    pub version: u32,
}

fn check_name(name: &str) -> Result<()> {
    check_slug("the name", name).map_err(Error::BadRequest)
}

/// The aliases of a name and its latest version.
#[utoipa::path(get, path = "/models/{name}/aliases", tag = "models",
    params(("name" = String, Path, description = "A model name (a job's `name`)")),
    responses(
        (status = 200, description = "The name's aliases", body = AliasList),
        (status = 404, description = "No model is named so", body = Problem,
            content_type = "application/problem+json"),
    ))]
async fn list_aliases(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<AliasList>> {
    check_name(&name)?;
    let (aliases, latest_version) = state.store.aliases(&name).await?;
    Ok(Json(AliasList {
        name,
        latest_version,
        aliases: aliases
            .into_iter()
            .map(|a| AliasView::new(a, None))
            .collect(),
    }))
}

/// The version an alias points at.
#[utoipa::path(get, path = "/models/{name}/aliases/{alias}", tag = "models",
    params(
        ("name" = String, Path, description = "A model name (a job's `name`)"),
        ("alias" = String, Path, description = "One of its aliases"),
    ),
    responses(
        (status = 200, description = "The alias", body = AliasView),
        (status = 404, description = "No such name or alias", body = Problem,
            content_type = "application/problem+json"),
    ))]
async fn get_alias(
    State(state): State<AppState>,
    Path((name, alias)): Path<(String, String)>,
) -> Result<Json<AliasView>> {
    check_name(&name)?;
    Ok(Json(AliasView::new(
        state.store.alias(&name, &alias).await?,
        None,
    )))
}

/// Point an alias at a version (creating it, or moving it in one statement). Requests
/// already under way finish on the version they resolved; later ones use the new one.
#[utoipa::path(put, path = "/models/{name}/aliases/{alias}", tag = "models",
    params(
        ("name" = String, Path, description = "A model name (a job's `name`)"),
        ("alias" = String, Path, description = "The alias: lower-case letters, digits, `-` and \
            `_`, starting with a letter or digit; `latest` is reserved"),
    ),
    request_body = SetAlias,
    responses(
        (status = 200, description = "Moved (or set again to the same version)", body = AliasView),
        (status = 201, description = "Created", body = AliasView,
            headers(("Location" = String, description = "The alias's URL"))),
        (status = 404, description = "No such name, or no such version of it", body = Problem,
            content_type = "application/problem+json"),
        (status = 413, description = "Body over --max-body-bytes", body = Problem,
            content_type = "application/problem+json"),
        (status = 415, description = "The body is not application/json", body = Problem,
            content_type = "application/problem+json"),
        (status = 422, description = "An alias that is not a slug (or `latest`), or a body \
            without a version from 1", body = Problem, content_type = "application/problem+json"),
    ))]
async fn set_alias(
    State(state): State<AppState>,
    Path((name, alias)): Path<(String, String)>,
    Json(body): Json<SetAlias>,
) -> Result<(StatusCode, HeaderMap, Json<AliasView>)> {
    check_name(&name)?;
    check_alias("the alias", &alias).map_err(Error::Unprocessable)?;
    if body.version == 0 {
        return Err(Error::Unprocessable(
            "version must be from 1 (versions count 1, 2, 3… per name)".into(),
        ));
    }
    let (set, previous) = state.store.set_alias(&name, &alias, body.version).await?;
    state.models.refs_changed();
    tracing::info!(name, alias, version = set.version, previous = ?previous, "alias set");
    let mut headers = HeaderMap::new();
    let status = match previous {
        Some(_) => StatusCode::OK,
        None => {
            let location = format!("/models/{name}/aliases/{alias}");
            headers.insert(
                header::LOCATION,
                location.parse().expect("a slug is a valid header"),
            );
            StatusCode::CREATED
        }
    };
    Ok((status, headers, Json(AliasView::new(set, previous))))
}

/// Delete an alias (the version it pointed at stays).
#[utoipa::path(delete, path = "/models/{name}/aliases/{alias}", tag = "models",
    params(
        ("name" = String, Path, description = "A model name (a job's `name`)"),
        ("alias" = String, Path, description = "One of its aliases"),
    ),
    responses(
        (status = 204, description = "Deleted"),
        (status = 404, description = "No such name or alias", body = Problem,
            content_type = "application/problem+json"),
    ))]
async fn delete_alias(
    State(state): State<AppState>,
    Path((name, alias)): Path<(String, String)>,
) -> Result<StatusCode> {
    check_name(&name)?;
    state.store.delete_alias(&name, &alias).await?;
    state.models.refs_changed();
    tracing::info!(name, alias, "alias deleted");
    Ok(StatusCode::NO_CONTENT)
}
