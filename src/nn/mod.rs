//! The numerical core: Keras-style dense networks, trained and evaluated in pure Rust.
//! No I/O, no async; the service uses only what is re-exported here
//! (the contract is `docs/engine-api.md`).

mod data;
mod error;
mod layers;
mod memory;
mod model;
mod ops;
mod optim;
mod spec;
mod train;

pub use data::stream::ChunkSource;
pub use data::{DataShape, Samples};
pub use error::{ModelError, OutOfMemory, SpecError, TrainError};
pub use memory::{human, predict_memory, training_memory, LayerShare, MemoryEstimate};
pub use model::summary::{LayerSummary, ModelSummary};
pub use model::{Evaluation, Model, Task};
pub use spec::check::{Mode, ValidSpec};
pub use spec::{
    Activation, AdamSpec, AdamWSpec, BatchSize, DenseSpec, DropoutSpec, EarlyStoppingSpec,
    Initializer, InputSpec, LayerSpec, LossKind, MetricKind, ModeSpec, ModelSpec,
    NormalizationSpec, OptimizerSpec, ReduceLrSpec, RegularizerSpec, RmsPropSpec, SgdSpec,
    TrainingSpec,
};
pub use train::callbacks::{overfitting_start, DEFAULT_OVERFITTING_WINDOW};
pub use train::fit_stream::{fit_streaming, resume_streaming};
pub use train::record::EpochRecord;
pub use train::state::TrainingState;
pub use train::threads::on_job_threads;
pub use train::{fit, resume, FitObserver, FitOptions, FitOutcome};
