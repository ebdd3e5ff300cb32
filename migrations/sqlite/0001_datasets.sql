-- Datasets: metadata in one row, the matrix in row chunks.
CREATE TABLE datasets (
    id              TEXT PRIMARY KEY NOT NULL,
    name            TEXT NOT NULL,
    rows            INTEGER NOT NULL,
    -- JSON arrays of column names: all columns in upload order, then the split.
    columns         TEXT NOT NULL,
    feature_names   TEXT NOT NULL,
    target_names    TEXT NOT NULL,
    -- JSON array of {min, max, integral} per target column (what spec validation needs).
    target_stats    TEXT NOT NULL,
    chunk_rows      INTEGER NOT NULL,
    created_at      TEXT NOT NULL
);

-- Each chunk holds `rows` consecutive rows as little-endian f32, row-major, every row being
-- the features followed by the targets. Chunks keep each BLOB far below SQLite's 1 GB cap and
-- let training stream mini-batches from storage. The foreign key is deferred so an upload can
-- write chunks as it parses and insert the dataset row last, in the same transaction.
CREATE TABLE dataset_chunks (
    dataset_id  TEXT NOT NULL REFERENCES datasets (id) ON DELETE CASCADE DEFERRABLE INITIALLY DEFERRED,
    idx         INTEGER NOT NULL,
    rows        INTEGER NOT NULL,
    data        BLOB NOT NULL,
    PRIMARY KEY (dataset_id, idx)
);
