-- Model names, versions and aliases (the registry). A job that names its model ("name":
-- "churn") makes the next version of that name. `last_version` only grows: a deleted
-- version's number is never given to another model, so a client pinned to
-- churn/versions/3 cannot silently get a different model later.
CREATE TABLE model_names (
    name            TEXT PRIMARY KEY NOT NULL,
    last_version    INTEGER NOT NULL,
    created_at      TEXT NOT NULL
);

-- NULL for models of unnamed jobs (and for those stored before names existed).
ALTER TABLE models ADD COLUMN name TEXT REFERENCES model_names (name);
ALTER TABLE models ADD COLUMN version INTEGER;
-- Two jobs finishing at once can never hold the same version of a name.
CREATE UNIQUE INDEX models_name_version ON models (name, version);
-- What the upload typed each feature column as ("number", "category", "identifier"), a
-- JSON list in feature_names order; NULL for models stored before it.
ALTER TABLE models ADD COLUMN input_types TEXT;

-- An alias (`churn@champion`) points at one version of its name and moves in one
-- statement. A model an alias points at cannot be deleted (the foreign key backs up the
-- service's 409).
CREATE TABLE model_aliases (
    name        TEXT NOT NULL REFERENCES model_names (name),
    alias       TEXT NOT NULL,
    model_id    TEXT NOT NULL REFERENCES models (id),
    created_at  TEXT NOT NULL,
    updated_at  TEXT NOT NULL,
    PRIMARY KEY (name, alias)
);
CREATE INDEX model_aliases_model ON model_aliases (model_id);

-- What a job asks of the registry, beside its training spec: the name its model becomes a
-- version of, the alias to move to it when it succeeds (only if its monitored validation
-- value is at least as good as the alias's current target's, with promote_if_better).
ALTER TABLE jobs ADD COLUMN name TEXT;
ALTER TABLE jobs ADD COLUMN promote TEXT;
ALTER TABLE jobs ADD COLUMN promote_if_better INTEGER NOT NULL DEFAULT 0;
-- Set with model_id when the job succeeds: its model's version, and whether the alias
-- moved (JSON: alias, moved, reason, the values compared).
ALTER TABLE jobs ADD COLUMN model_version INTEGER;
ALTER TABLE jobs ADD COLUMN promotion TEXT;
