//! The bytes of a `TrainingState`.
//!
//! A checkpoint is a safetensors file: the current weights (`model.*`), the
//! early-stopping snapshot (`best.*`), the optimizer moments (`moments.{i}`), and in
//! the metadata the spec and a JSON `progress` record (epoch, iteration count, learning
//! rate, RNG states, callback states, history). Floats in `progress` are stored as
//! their bits so that resuming is bit-identical.

use std::collections::{BTreeMap, HashMap};

use safetensors::SafeTensors;
use serde::{Deserialize, Serialize};

use crate::nn::model::tensor_codec::{read_f32, TensorList};
use crate::nn::model::Model;
use crate::nn::train::record::EpochRecord;
use crate::nn::train::state::TrainingState;

const FORMAT: &str = "nnserve.checkpoint";
/// Version 2: dropout masks are counter-based (one RNG draw per batch) and large
/// batches sum two shards' gradients, so a version-1 state would not continue the run
/// it came from.
const VERSION: &str = "2";

/// An `EpochRecord` with its floats as bits.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub(crate) struct StoredRecord {
    epoch: usize,
    loss: u64,
    val_loss: Option<u64>,
    metrics: BTreeMap<String, u64>,
    learning_rate: u64,
    seconds: u64,
    overfitting: bool,
}

impl StoredRecord {
    pub fn mark_overfitting(&mut self) {
        self.overfitting = true;
    }
}

impl From<&EpochRecord> for StoredRecord {
    fn from(r: &EpochRecord) -> Self {
        StoredRecord {
            epoch: r.epoch,
            loss: r.loss.to_bits(),
            val_loss: r.val_loss.map(f64::to_bits),
            metrics: r
                .metrics
                .iter()
                .map(|(k, v)| (k.clone(), v.to_bits()))
                .collect(),
            learning_rate: r.learning_rate.to_bits(),
            seconds: r.seconds.to_bits(),
            overfitting: r.overfitting,
        }
    }
}

impl From<&StoredRecord> for EpochRecord {
    fn from(r: &StoredRecord) -> Self {
        EpochRecord {
            epoch: r.epoch,
            loss: f64::from_bits(r.loss),
            val_loss: r.val_loss.map(f64::from_bits),
            metrics: r
                .metrics
                .iter()
                .map(|(k, v)| (k.clone(), f64::from_bits(*v)))
                .collect(),
            learning_rate: f64::from_bits(r.learning_rate),
            seconds: f64::from_bits(r.seconds),
            overfitting: r.overfitting,
        }
    }
}

impl TrainingState {
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut list = TensorList::default();
        self.model.push_tensors("model.", &mut list);
        if let Some(best) = &self.best_weights {
            Model::new(self.model.spec().clone(), best.clone()).push_tensors("best.", &mut list);
        }
        for (i, m) in self.moments.iter().enumerate() {
            list.push(format!("moments.{i}"), vec![m.len()], m.iter().copied());
        }
        let mut meta = self.model.metadata();
        meta.insert("format".to_owned(), FORMAT.to_owned());
        meta.insert("version".to_owned(), VERSION.to_owned());
        meta.insert("moments".to_owned(), self.moments.len().to_string());
        meta.insert("best".to_owned(), self.best_weights.is_some().to_string());
        meta.insert(
            "progress".to_owned(),
            serde_json::to_string(&self.progress).expect("progress serialises"),
        );
        list.serialize(meta)
    }

    pub(crate) fn from_bytes(bytes: &[u8]) -> Result<TrainingState, String> {
        let st = SafeTensors::deserialize(bytes).map_err(|e| e.to_string())?;
        let (_, header) = SafeTensors::read_metadata(bytes).map_err(|e| e.to_string())?;
        let meta: HashMap<String, String> = header.metadata().clone().unwrap_or_default();
        let get = |key: &str| {
            meta.get(key)
                .ok_or_else(|| format!("metadata {key} is missing"))
        };
        if get("format")? != FORMAT {
            return Err(format!("not an {FORMAT} file"));
        }
        let version = get("version")?;
        if version != VERSION {
            return Err(format!(
                "it is format version {version}, written by an older engine whose dropout \
                 masks and gradient sums differ from this one's ({VERSION}): it cannot be \
                 resumed exactly; start the training again"
            ));
        }
        let model = Model::read_tensors(&st, "model.", &meta)?;
        let best_weights = match get("best")?.as_str() {
            "true" => Some(Model::read_tensors(&st, "best.", &meta)?.net),
            _ => None,
        };
        let count: usize = get("moments")?
            .parse()
            .map_err(|_| "bad moment count".to_owned())?;
        let moments = (0..count)
            .map(|i| {
                let name = format!("moments.{i}");
                let len = st
                    .tensor(&name)
                    .map_err(|_| format!("{name} is missing"))?
                    .shape()
                    .iter()
                    .product::<usize>();
                read_f32(&st, &name, &[len])
            })
            .collect::<Result<Vec<_>, _>>()?;
        let progress =
            serde_json::from_str(get("progress")?).map_err(|e| format!("progress: {e}"))?;
        Ok(TrainingState {
            model,
            moments,
            best_weights,
            progress,
        })
    }
}
