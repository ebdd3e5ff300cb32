-- The rows a job trains and validates on, and the dataset's rows it leaves out for a
-- missing label, fixed when the job is queued. NULL for jobs queued before they were kept.
ALTER TABLE jobs ADD COLUMN training_rows INTEGER;
ALTER TABLE jobs ADD COLUMN validation_rows INTEGER;
ALTER TABLE jobs ADD COLUMN unlabelled_rows INTEGER;
