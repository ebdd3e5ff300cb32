-- The schema of migrations/sqlite/0001..0010 for PostgreSQL, in one step (no PostgreSQL
-- database predates it). The tables, columns and meanings are the same; a later change adds
-- a migration to each directory. Integers are BIGINT (Rust's i64 on both backends), times
-- TIMESTAMPTZ, blobs BYTEA kept out of line and uncompressed (row chunks and weights are
-- float data that does not compress, and compressing them cost time on every write).

CREATE TABLE datasets (
    id              TEXT PRIMARY KEY NOT NULL,
    name            TEXT NOT NULL,
    rows            BIGINT NOT NULL,
    -- JSON arrays of column names: all columns in upload order, then the split.
    columns         TEXT NOT NULL,
    feature_names   TEXT NOT NULL,
    target_names    TEXT NOT NULL,
    -- JSON array of {min, max, integral} per target column (what spec validation needs).
    target_stats    TEXT NOT NULL,
    chunk_rows      BIGINT NOT NULL,
    created_at      TIMESTAMPTZ NOT NULL,
    column_reports  TEXT NOT NULL DEFAULT '[]',
    unlabelled_rows BIGINT NOT NULL DEFAULT 0,
    na_values       TEXT
);

-- Rows in chunks of little-endian f32 cells, written before the dataset row in the
-- upload's transaction (hence the deferred key).
CREATE TABLE dataset_chunks (
    dataset_id  TEXT NOT NULL REFERENCES datasets (id) ON DELETE CASCADE DEFERRABLE INITIALLY DEFERRED,
    idx         BIGINT NOT NULL,
    rows        BIGINT NOT NULL,
    data        BYTEA NOT NULL,
    PRIMARY KEY (dataset_id, idx)
);
ALTER TABLE dataset_chunks ALTER COLUMN data SET STORAGE EXTERNAL;

-- Training jobs. `seq` orders the FIFO queue; `id` is the public identifier.
-- dataset_id has no foreign key on purpose: a finished job keeps naming the dataset it
-- trained on after that dataset is deleted (deletion is refused while a job is active).
CREATE TABLE jobs (
    seq                 BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    id                  TEXT NOT NULL UNIQUE,
    dataset_id          TEXT NOT NULL,
    spec                TEXT NOT NULL,
    status              TEXT NOT NULL CHECK (status IN ('queued', 'running', 'succeeded', 'failed', 'cancelled')),
    batch_sizes         TEXT NOT NULL,
    epochs              BIGINT NOT NULL,
    epochs_done         BIGINT NOT NULL DEFAULT 0,
    monitor             TEXT NOT NULL,
    monitor_mode        TEXT NOT NULL CHECK (monitor_mode IN ('min', 'max')),
    best_trial          BIGINT,
    best_epoch          BIGINT,
    best_value          DOUBLE PRECISION,
    stopped_early       BOOLEAN,
    overfitting_epoch   BIGINT,
    error               TEXT,
    model_id            TEXT,
    created_at          TIMESTAMPTZ NOT NULL,
    started_at          TIMESTAMPTZ,
    finished_at         TIMESTAMPTZ,
    crashes             BIGINT NOT NULL DEFAULT 0,
    data_path           TEXT CHECK (data_path IN ('memory', 'streamed')),
    estimated_peak_bytes BIGINT,
    training_rows       BIGINT,
    validation_rows     BIGINT,
    unlabelled_rows     BIGINT,
    name                TEXT,
    promote             TEXT,
    promote_if_better   BOOLEAN NOT NULL DEFAULT FALSE,
    model_version       BIGINT,
    promotion           TEXT,
    dropped_rows        BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX jobs_status ON jobs (status, seq);
CREATE INDEX jobs_dataset ON jobs (dataset_id, status);

CREATE TABLE job_epochs (
    job_id      TEXT NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    trial       BIGINT NOT NULL,
    epoch       BIGINT NOT NULL,
    batch_size  BIGINT NOT NULL,
    record      TEXT NOT NULL,
    PRIMARY KEY (job_id, trial, epoch)
);

CREATE TABLE job_checkpoints (
    job_id      TEXT PRIMARY KEY NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    trial       BIGINT NOT NULL,
    epoch       BIGINT NOT NULL,
    state       BYTEA NOT NULL
);
ALTER TABLE job_checkpoints ALTER COLUMN state SET STORAGE EXTERNAL;

CREATE TABLE job_trials (
    job_id              TEXT NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    trial               BIGINT NOT NULL,
    batch_size          BIGINT NOT NULL,
    best_epoch          BIGINT,
    best_value          DOUBLE PRECISION,
    stopped_early       BOOLEAN NOT NULL,
    overfitting_epoch   BIGINT,
    model               BYTEA,
    PRIMARY KEY (job_id, trial)
);
ALTER TABLE job_trials ALTER COLUMN model SET STORAGE EXTERNAL;

-- A name's versions are numbered by this counter, which only grows.
CREATE TABLE model_names (
    name            TEXT PRIMARY KEY NOT NULL,
    last_version    BIGINT NOT NULL,
    created_at      TIMESTAMPTZ NOT NULL
);

CREATE TABLE models (
    id              TEXT PRIMARY KEY NOT NULL,
    job_id          TEXT NOT NULL,
    dataset_id      TEXT NOT NULL,
    task            TEXT NOT NULL,
    feature_names   TEXT NOT NULL,
    target_names    TEXT NOT NULL,
    spec            TEXT NOT NULL,
    summary         TEXT NOT NULL,
    batch_size      BIGINT NOT NULL,
    best_epoch      BIGINT,
    final_metrics   TEXT NOT NULL,
    best_metrics    TEXT,
    weights         BYTEA NOT NULL,
    created_at      TIMESTAMPTZ NOT NULL,
    importance      TEXT,
    name            TEXT REFERENCES model_names (name),
    version         BIGINT,
    input_types     TEXT
);
ALTER TABLE models ALTER COLUMN weights SET STORAGE EXTERNAL;
CREATE UNIQUE INDEX models_name_version ON models (name, version);

CREATE TABLE model_aliases (
    name        TEXT NOT NULL REFERENCES model_names (name),
    alias       TEXT NOT NULL,
    model_id    TEXT NOT NULL REFERENCES models (id),
    created_at  TIMESTAMPTZ NOT NULL,
    updated_at  TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (name, alias)
);
CREATE INDEX model_aliases_model ON model_aliases (model_id);
