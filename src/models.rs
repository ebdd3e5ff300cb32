//! Trained models kept in memory for serving: a prediction never reads the database once
//! its model is loaded.

use std::collections::HashMap;
use std::sync::{Arc, PoisonError, RwLock};

use uuid::Uuid;

use crate::nn::{Model, ModelError};
use crate::store::{Store, StoreError, StoredModel};

/// A model ready to predict, with what requests need to address its inputs by name.
pub struct ServedModel {
    pub model: Model,
    pub feature_names: Vec<String>,
    pub feature_index: HashMap<String, usize>,
    /// Parameters, a proxy for the work per predicted row.
    pub params: usize,
}

impl ServedModel {
    pub fn new(model: Model, stored: &StoredModel) -> Self {
        let feature_index = stored
            .feature_names
            .iter()
            .enumerate()
            .map(|(i, name)| (name.clone(), i))
            .collect();
        Self {
            params: model.summary().total_params,
            model,
            feature_names: stored.feature_names.clone(),
            feature_index,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("stored weights of model {id} do not load: {source}")]
    Model { id: Uuid, source: ModelError },
}

/// Models by id; cheap to clone (shared).
#[derive(Clone, Default)]
pub struct ModelCache {
    models: Arc<RwLock<HashMap<Uuid, Arc<ServedModel>>>>,
}

impl ModelCache {
    pub fn insert(&self, id: Uuid, model: ServedModel) -> Arc<ServedModel> {
        let model = Arc::new(model);
        self.write().insert(id, model.clone());
        model
    }

    pub fn remove(&self, id: Uuid) {
        self.write().remove(&id);
    }

    /// The cached model, loading it from the store on first use.
    pub async fn get(&self, store: &Store, id: Uuid) -> Result<Arc<ServedModel>, LoadError> {
        let cached = self
            .models
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&id)
            .cloned();
        if let Some(model) = cached {
            return Ok(model);
        }
        let stored = store.model(id).await?;
        let weights = store.model_weights(id).await?;
        let model =
            Model::from_safetensors(&weights).map_err(|source| LoadError::Model { id, source })?;
        tracing::info!(model = %id, "model loaded into memory");
        Ok(self.insert(id, ServedModel::new(model, &stored)))
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, HashMap<Uuid, Arc<ServedModel>>> {
        // A panic while holding the lock cannot leave the map half-updated (single
        // insert/remove calls), so a poisoned lock is still safe to use.
        self.models.write().unwrap_or_else(PoisonError::into_inner)
    }
}
