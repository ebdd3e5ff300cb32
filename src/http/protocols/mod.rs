//! Other inference servers' APIs over the same models, answered by the same scoring as
//! `/predict` (so their predictions are bit for bit predict's): TensorFlow Serving's REST
//! API (`/v1/models/…`) and the Open Inference Protocol (KServe V2, `/v2/…`) with its
//! binary tensor extension. Their errors are `{"error": "…"}`, as their clients expect.

mod tfserving;
mod v2;

use std::sync::Arc;

use utoipa_axum::router::OpenApiRouter;

use crate::http::error::ProtocolError;
use crate::http::models::Resolved;
use crate::http::AppState;
use crate::serving::ServedModel;
use crate::store::StoredModel;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .merge(tfserving::router())
        .merge(v2::router())
}

/// A model a protocol request names, loaded for predicting.
struct Loaded {
    served: Arc<ServedModel>,
    /// The name it answers under: its name, or its id for an unnamed model.
    name: String,
    /// Its version of the name; 1 for an unnamed model, the only version of itself.
    version: u32,
}

async fn load(state: &AppState, model: &Resolved) -> Result<Loaded, ProtocolError> {
    let served = state.models.get(&state.store, model.id).await?;
    let (name, version) = name_and_version(&state.store.model(model.id).await?);
    Ok(Loaded {
        served,
        name,
        version,
    })
}

/// The name a stored model answers under, and its version (see [`Loaded`]).
fn name_and_version(model: &StoredModel) -> (String, u32) {
    match &model.name {
        Some(name) => (name.clone(), model.version.unwrap_or(1)),
        None => (model.id.to_string(), 1),
    }
}
