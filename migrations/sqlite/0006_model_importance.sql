-- Permutation importance of each input column on the validation split, computed once when
-- the job succeeds: JSON {"repeats", "columns": [{column, mean, std}]} or {"reason"} when it
-- was not computed. NULL for models stored before it.
ALTER TABLE models ADD COLUMN importance TEXT;
