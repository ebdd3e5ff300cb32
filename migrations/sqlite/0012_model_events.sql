-- Changes other instances' model caches must see: a deleted model (model_id), or any
-- change to what names and aliases resolve to (model_id NULL). Read by `seq`; old rows
-- are pruned as new ones are written.
CREATE TABLE model_events (
    seq         INTEGER PRIMARY KEY AUTOINCREMENT,
    model_id    TEXT,
    created_ms  INTEGER NOT NULL
);
