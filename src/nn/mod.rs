//! The numerical core: Keras-style dense networks, trained and evaluated in pure Rust.
//! No I/O, no async, no HTTP, no SQL. The service (`store`, `jobs`, `http`) uses only what
//! is re-exported here; `cargo doc --open` shows the whole contract. Data and weights are
//! f32; reported losses and metrics f64.
//!
//! # The flow
//! [`TrainingSpec::from_json`] (serde with Keras names; a parse error names the field path)
//! → [`TrainingSpec::validate`] against a dataset's [`DataShape`] (every error names the
//! field and the bad value) → [`ValidSpec`], the only input training accepts → [`fit`] on
//! [`Samples`] in memory, or [`fit_streaming`] on a [`ChunkSource`] larger than memory; each
//! finished epoch goes to a [`FitObserver`] with a [`TrainingState`] whose bytes [`resume`]
//! and [`resume_streaming`] continue bit-identically → [`FitOutcome`] with the [`Model`],
//! which predicts, evaluates, summarises and round-trips through safetensors.
//! [`training_memory`] and [`predict_memory`] estimate peak memory before anything is
//! allocated.
//!
//! # Semantics the service relies on
//! - Layer types: `input` (optional first layer, checked against the dataset),
//!   `normalization` (first layer only), `dense`, `dropout`; the last layer is dense.
//!   Cross-entropies need the matching output activation (sigmoid / softmax).
//! - Typed columns: when [`DataShape::columns`] is set, rows are [`cell`]s (numbers, level
//!   codes, missing) and the network starts with an encoding fitted on the training rows
//!   only (numbers standardised, with a missing indicator where the training rows had
//!   missing values; categories one-hot over their 100 most frequent training levels, slot
//!   0 for the rest and for levels first seen later; identifiers left out). It is stored
//!   with the model; [`Model::cell_of`] turns a client's raw value into a cell.
//! - `fit(.., validation: Some(v), ..)` validates on `v` and ignores `validation_split`. A
//!   `val_*` monitor is accepted only with `validation_split > 0`.
//! - [`EpochRecord::overfitting`]: with window `w` (early-stopping patience when set, else
//!   [`DEFAULT_OVERFITTING_WINDOW`]), epoch `s` is where overfitting began when `val_loss`
//!   rose at each of epochs `s..s+w-1` while the training loss fell at each of them; only the
//!   first such `s` of a run. It is known at the end of epoch `s+w-1`: the record of `s` in
//!   `FitOutcome::history` carries the flag, and from then on
//!   [`TrainingState::overfitting_epoch`] names it for observers that stored `s` already.
//! - `seconds` is the only non-deterministic field of a record.
//! - Streaming: one pass over all chunks first (the same data checks and messages as `fit`,
//!   and the normalization statistics of the training rows merged chunk by chunk in f64).
//!   Keras' split sizes, but the validation rows are whole chunks picked in a seeded random
//!   order (the last one partly), not single rows: a row-level split would make every
//!   validation pass read the whole dataset. They are validated in dataset order. Each epoch
//!   visits the training chunks in an order shuffled with the epoch's shuffle stream and
//!   draws rows at random from a buffer of several chunks; with `shuffle: false`, chunks and
//!   rows in dataset order. Runs and resumes are bit-identical for the same `memory_bytes`
//!   (it sets the buffer size). A failed read ends training with [`TrainError::Read`].
//!
//! # Rooms
//! `spec` (the JSON spec, parsing, checks → `ValidSpec`), `layers` (one file per layer kind, listed only in `layers/mod.rs`),
//! `ops` (activations, losses, metrics, matmul, rng, fallible allocation), `optim` (the
//! optimizers and their update), `model` (network, prediction paths, summary, safetensors
//! codec, scratch buffers), `data` (batches, splits, shapes; `data::stream` for sources larger
//! than memory), `train` (the fit loop, epochs, steps across threads, callbacks, state and
//! checkpoints), `memory` (the estimates), `error`.

mod data;
mod error;
mod layers;
mod memory;
mod model;
mod ops;
mod optim;
mod spec;
mod train;

pub use data::cell;
pub use data::stream::ChunkSource;
pub use data::{Column, ColumnKind, DataShape, Samples};
pub use error::{ModelError, OutOfMemory, SpecError, TrainError};
pub use layers::encoding::RawValue;
pub use memory::{human, predict_memory, training_memory, LayerShare, MemoryEstimate};
pub use model::importance::Importance;
pub use model::parts::{
    ColumnEncoding, ColumnPart, LayerPart, Lookup, LookupText, NumberScale, Parts,
};
pub use model::summary::{InputSummary, LayerSummary, ModelSummary};
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
pub use train::{fit, resume, validation_rows, FitObserver, FitOptions, FitOutcome};
