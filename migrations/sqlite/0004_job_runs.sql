-- Consecutive process deaths while a job was running, counted at the next start and
-- reset when the job finishes an epoch. At three the job is failed instead of resumed
-- again: a job that kills its process must not crash-loop the service.
ALTER TABLE jobs ADD COLUMN crashes INTEGER NOT NULL DEFAULT 0;

-- How the job's latest run reads its rows: 'memory' (loaded whole) or 'streamed' (chunk
-- by chunk from dataset_chunks, the dataset being over --dataset-memory-bytes).
ALTER TABLE jobs ADD COLUMN data_path TEXT CHECK (data_path IN ('memory', 'streamed'));

-- The admission estimate of the job's peak memory, in bytes (see docs/reliability.md).
ALTER TABLE jobs ADD COLUMN estimated_peak_bytes INTEGER;
