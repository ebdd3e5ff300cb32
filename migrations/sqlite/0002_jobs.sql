-- Training jobs. `seq` orders the FIFO queue; `id` is the public identifier.
-- dataset_id has no foreign key on purpose: a finished job keeps naming the dataset it
-- trained on after that dataset is deleted (deletion is refused while a job is active).
CREATE TABLE jobs (
    seq                 INTEGER PRIMARY KEY AUTOINCREMENT,
    id                  TEXT NOT NULL UNIQUE,
    dataset_id          TEXT NOT NULL,
    spec                TEXT NOT NULL,               -- the TrainingSpec as JSON
    status              TEXT NOT NULL CHECK (status IN ('queued', 'running', 'succeeded', 'failed', 'cancelled')),
    batch_sizes         TEXT NOT NULL,               -- JSON array, one trial per size
    epochs              INTEGER NOT NULL,            -- per trial
    epochs_done         INTEGER NOT NULL DEFAULT 0,  -- finished epochs over all trials
    monitor             TEXT NOT NULL,               -- the quantity that picks the best epoch
    monitor_mode        TEXT NOT NULL CHECK (monitor_mode IN ('min', 'max')),
    best_trial          INTEGER,
    best_epoch          INTEGER,
    best_value          REAL,
    stopped_early       INTEGER,
    overfitting_epoch   INTEGER,
    error               TEXT,
    model_id            TEXT,
    created_at          TEXT NOT NULL,
    started_at          TEXT,
    finished_at         TEXT
);
CREATE INDEX jobs_status ON jobs (status, seq);
CREATE INDEX jobs_dataset ON jobs (dataset_id, status);

-- One row per finished epoch, written the moment the epoch ends.
CREATE TABLE job_epochs (
    job_id      TEXT NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    trial       INTEGER NOT NULL,
    epoch       INTEGER NOT NULL,
    batch_size  INTEGER NOT NULL,
    record      TEXT NOT NULL,                       -- the EpochRecord as JSON
    PRIMARY KEY (job_id, trial, epoch)
);

-- The latest training state of the running trial, written with its epoch row; a job
-- interrupted by a restart resumes from it.
CREATE TABLE job_checkpoints (
    job_id      TEXT PRIMARY KEY NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    trial       INTEGER NOT NULL,
    epoch       INTEGER NOT NULL,
    state       BLOB NOT NULL
);

-- Finished trials of a job (one per batch size); `model` is kept until the job finishes so
-- a resumed job can still pick the best trial.
CREATE TABLE job_trials (
    job_id              TEXT NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    trial               INTEGER NOT NULL,
    batch_size          INTEGER NOT NULL,
    best_epoch          INTEGER,
    best_value          REAL,
    stopped_early       INTEGER NOT NULL,
    overfitting_epoch   INTEGER,
    model               BLOB,
    PRIMARY KEY (job_id, trial)
);
