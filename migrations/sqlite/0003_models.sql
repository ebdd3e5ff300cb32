-- Trained models. job_id and dataset_id record provenance and outlive their rows.
CREATE TABLE models (
    id              TEXT PRIMARY KEY NOT NULL,
    job_id          TEXT NOT NULL,
    dataset_id      TEXT NOT NULL,
    task            TEXT NOT NULL,                   -- regression | binary | multiclass
    feature_names   TEXT NOT NULL,                   -- JSON array
    target_names    TEXT NOT NULL,                   -- JSON array
    spec            TEXT NOT NULL,                   -- JSON TrainingSpec
    summary         TEXT NOT NULL,                   -- JSON ModelSummary
    batch_size      INTEGER NOT NULL,                -- of the trial that made it
    best_epoch      INTEGER,
    final_metrics   TEXT NOT NULL,                   -- JSON: the last epoch's record
    best_metrics    TEXT,                            -- JSON: the best epoch's record
    weights         BLOB NOT NULL,                   -- safetensors, spec and normalization included
    created_at      TEXT NOT NULL
);
