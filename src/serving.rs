//! Trained models kept in memory for serving: a prediction never reads the database once
//! its model is loaded, and once the reference it names the model by (`churn@champion`) has
//! been resolved.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use uuid::Uuid;

use crate::nn::{Model, ModelError};
use crate::store::{ModelEvent, ModelRef, Store, StoreError, StoredModel};

/// How often a cache on a shared database reads the model events even without a notice
/// (a notice is lost while the listening connection reconnects).
const LOOK_EVERY: Duration = Duration::from_millis(500);

/// A model ready to predict, with what requests need to address its inputs by name.
pub struct ServedModel {
    pub model: Model,
    pub feature_names: Vec<String>,
    pub feature_index: HashMap<String, usize>,
    /// What batch scoring names a regression's outputs.
    pub target_names: Vec<String>,
    /// Parameters, a proxy for the work per predicted row.
    pub params: usize,
}

impl ServedModel {
    /// Memory it holds: the weights and the column names.
    pub fn bytes(&self) -> u64 {
        let names: usize = self
            .feature_names
            .iter()
            .map(|n| 2 * n.len() + 48)
            .sum::<usize>()
            + self
                .target_names
                .iter()
                .map(|n| n.len() + 24)
                .sum::<usize>();
        (self.params * 4 + names) as u64
    }

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
            target_names: stored.target_names.clone(),
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

/// Models by id, at most `capacity` bytes of them: the least recently used are evicted
/// (and loaded again on their next request). Cheap to clone (shared).
#[derive(Clone)]
pub struct ModelCache {
    inner: Arc<RwLock<Entries>>,
    capacity: u64,
    /// A logical clock for recency: reads stamp their entry without the write lock.
    clock: Arc<AtomicU64>,
    /// What names, aliases and versions resolved to (see [`ModelCache::resolve`]).
    refs: Arc<RwLock<Refs>>,
}

/// Resolved references. `generation` counts the changes to names, aliases and versions: a
/// lookup that began before one is not kept, as it may have read the old answer.
#[derive(Default)]
struct Refs {
    generation: u64,
    ids: HashMap<ModelRef, Uuid>,
}

/// Resolved references kept at most; past it they are forgotten together.
const MAX_REFS: usize = 10_000;

#[derive(Default)]
struct Entries {
    models: HashMap<Uuid, Entry>,
    bytes: u64,
}

struct Entry {
    model: Arc<ServedModel>,
    bytes: u64,
    last_used: AtomicU64,
}

impl ModelCache {
    pub fn new(capacity: u64) -> Self {
        Self {
            inner: Arc::default(),
            capacity,
            clock: Arc::default(),
            refs: Arc::default(),
        }
    }

    pub fn insert(&self, id: Uuid, model: ServedModel) -> Arc<ServedModel> {
        let model = Arc::new(model);
        let bytes = model.bytes();
        let now = self.tick();
        let mut entries = self.write();
        if let Some(old) = entries.models.insert(
            id,
            Entry {
                model: model.clone(),
                bytes,
                last_used: AtomicU64::new(now),
            },
        ) {
            entries.bytes -= old.bytes;
        }
        entries.bytes += bytes;
        // The model just inserted stays even when it alone exceeds the capacity: it is
        // about to serve the request that loaded it.
        while entries.bytes > self.capacity && entries.models.len() > 1 {
            let oldest = entries
                .models
                .iter()
                .filter(|(key, _)| **key != id)
                .min_by_key(|(_, e)| e.last_used.load(Ordering::Relaxed))
                .map(|(key, _)| *key)
                .expect("more than one entry");
            let evicted = entries.models.remove(&oldest).expect("present");
            entries.bytes -= evicted.bytes;
            tracing::debug!(model = %oldest, bytes = evicted.bytes, "model evicted from the cache");
        }
        model
    }

    /// Forgets a deleted model, and what references resolved to (it may have been the
    /// latest version of its name).
    pub fn remove(&self, id: Uuid) {
        let mut entries = self.write();
        if let Some(old) = entries.models.remove(&id) {
            entries.bytes -= old.bytes;
        }
        drop(entries);
        self.refs_changed();
    }

    /// The id `reference` names now: a model id as it is (loading it says whether it
    /// exists), a name, alias or version from memory once the store has answered it.
    /// Call [`ModelCache::refs_changed`] after every change to names, versions and aliases.
    pub async fn resolve(&self, store: &Store, reference: &ModelRef) -> Result<Uuid, StoreError> {
        if let ModelRef::Id(id) = reference {
            return Ok(*id);
        }
        let generation = {
            let refs = self.refs.read().unwrap_or_else(PoisonError::into_inner);
            if let Some(id) = refs.ids.get(reference) {
                return Ok(*id);
            }
            refs.generation
        };
        let id = store.resolve_model(reference).await?;
        let mut refs = self.refs.write().unwrap_or_else(PoisonError::into_inner);
        if refs.generation == generation {
            if refs.ids.len() >= MAX_REFS {
                refs.ids.clear();
            }
            refs.ids.insert(reference.clone(), id);
        }
        Ok(id)
    }

    /// A name got a version, lost one, or an alias moved: references resolve anew.
    pub fn refs_changed(&self) {
        let mut refs = self.refs.write().unwrap_or_else(PoisonError::into_inner);
        refs.generation += 1;
        refs.ids.clear();
    }

    /// Keeps this cache true to the changes other instances on a shared database make: a
    /// model deleted elsewhere is forgotten here, and references resolve anew after a
    /// name or alias changed elsewhere, within a notice or [`LOOK_EVERY`]. Runs until the
    /// process ends.
    pub async fn follow(self, store: Store) {
        let mut seen = loop {
            match store.last_model_event().await {
                Ok(seq) => break seq,
                Err(err) => {
                    tracing::warn!(error = %err, "cannot read the model events; retrying");
                    tokio::time::sleep(LOOK_EVERY).await;
                }
            }
        };
        let mut notices = None;
        loop {
            if notices.is_none() {
                notices = store.model_event_notices().await.unwrap_or_else(|err| {
                    tracing::warn!(error = %err, "cannot listen for model events; looking every {LOOK_EVERY:?}");
                    None
                });
            }
            let heard = async {
                match notices.as_mut() {
                    Some(notices) => notices.next().await,
                    None => std::future::pending().await,
                }
            };
            let heard = tokio::select! {
                heard = heard => Some(heard),
                () = tokio::time::sleep(LOOK_EVERY) => None,
            };
            if let Some(Err(err)) = heard {
                tracing::warn!(error = %err, "the model events' listener dropped; listening again");
                notices = None;
            }
            match store.model_events_after(seen).await {
                Ok((events, last)) => {
                    for event in events {
                        match event {
                            ModelEvent::Deleted(id) => self.remove(id),
                            ModelEvent::RefsChanged => self.refs_changed(),
                        }
                    }
                    seen = last;
                }
                Err(err) => tracing::warn!(error = %err, "cannot read the model events"),
            }
        }
    }

    /// Bytes and count of the models held now.
    pub fn usage(&self) -> (u64, usize) {
        let entries = self.inner.read().unwrap_or_else(PoisonError::into_inner);
        (entries.bytes, entries.models.len())
    }

    /// The cached model, loading it from the store on first use.
    pub async fn get(&self, store: &Store, id: Uuid) -> Result<Arc<ServedModel>, LoadError> {
        if let Some(model) = self.cached(id) {
            return Ok(model);
        }
        let stored = store.model(id).await?;
        let weights = store.model_weights(id).await?;
        let model =
            Model::from_safetensors(&weights).map_err(|source| LoadError::Model { id, source })?;
        tracing::info!(model = %id, "model loaded into memory");
        Ok(self.insert(id, ServedModel::new(model, &stored)))
    }

    fn cached(&self, id: Uuid) -> Option<Arc<ServedModel>> {
        let entries = self.inner.read().unwrap_or_else(PoisonError::into_inner);
        let entry = entries.models.get(&id)?;
        entry.last_used.store(self.tick(), Ordering::Relaxed);
        Some(entry.model.clone())
    }

    fn tick(&self) -> u64 {
        self.clock.fetch_add(1, Ordering::Relaxed)
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Entries> {
        // A panic while holding the lock cannot leave the map half-updated (the byte
        // count is adjusted right beside each insert and remove), so a poisoned lock is
        // still safe to use.
        self.inner.write().unwrap_or_else(PoisonError::into_inner)
    }
}
