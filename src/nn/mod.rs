//! The numerical core: Keras-style dense networks, trained and evaluated in pure Rust.
//! No I/O, no async; the service uses only what is re-exported here
//! (the contract is `docs/engine-api.md`).

mod activation;
mod alloc;
mod batch;
mod callbacks;
mod checkpoint;
mod data;
mod epoch;
mod error;
mod fit_loop;
mod fit_stream;
mod infer;
mod io;
mod layers;
mod loss;
mod matmul;
mod memory;
mod metrics;
mod model;
mod network;
mod optim;
mod optim_spec;
mod parse;
mod record;
mod rng;
mod shard;
mod spec;
mod split;
mod state;
mod stream;
mod stream_source;
mod stream_validation;
mod summary;
mod threads;
mod train;
mod update;
mod validate;
mod validate_model;
mod workspace_pool;

pub use callbacks::{overfitting_start, DEFAULT_OVERFITTING_WINDOW};
pub use data::{DataShape, Samples};
pub use error::{ModelError, OutOfMemory, SpecError, TrainError};
pub use fit_stream::{fit_streaming, resume_streaming};
pub use memory::{human, predict_memory, training_memory, LayerShare, MemoryEstimate};
pub use model::{Evaluation, Model, Task};
pub use record::EpochRecord;
pub use spec::{
    Activation, AdamSpec, AdamWSpec, BatchSize, DenseSpec, DropoutSpec, EarlyStoppingSpec,
    Initializer, InputSpec, LayerSpec, LossKind, MetricKind, ModeSpec, ModelSpec,
    NormalizationSpec, OptimizerSpec, ReduceLrSpec, RegularizerSpec, RmsPropSpec, SgdSpec,
    TrainingSpec,
};
pub use state::TrainingState;
pub use stream::ChunkSource;
pub use summary::{LayerSummary, ModelSummary};
pub use threads::on_job_threads;
pub use train::{fit, resume, FitObserver, FitOptions, FitOutcome};
pub use validate::{Mode, ValidSpec};

#[cfg(test)]
mod gradcheck;
#[cfg(test)]
mod stream_tests;
