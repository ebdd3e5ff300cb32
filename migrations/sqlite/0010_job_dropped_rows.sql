-- The labelled rows a job leaves out because a `missing: "drop_row"` column is empty in
-- them, counted when the job is queued (training reads the same count again). 0 for jobs
-- queued before (none could drop rows).
ALTER TABLE jobs ADD COLUMN dropped_rows INTEGER NOT NULL DEFAULT 0;
