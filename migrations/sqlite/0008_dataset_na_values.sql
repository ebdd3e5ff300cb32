-- The missing-value markers an upload was read with (`?na_values=`), as a JSON list; NULL
-- for the defaults. A model trained on the dataset reads the same markers at predict time.
ALTER TABLE datasets ADD COLUMN na_values TEXT;
