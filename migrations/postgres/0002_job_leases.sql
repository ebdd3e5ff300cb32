-- Which instance runs a job, until when (milliseconds since the Unix epoch: integers
-- compare the same on every backend), and a cancellation any instance may ask for and
-- the one running it sees at its next heartbeat.
ALTER TABLE jobs ADD COLUMN lease_owner TEXT;
ALTER TABLE jobs ADD COLUMN lease_expires_ms BIGINT;
ALTER TABLE jobs ADD COLUMN cancel_requested BOOLEAN NOT NULL DEFAULT FALSE;
CREATE INDEX jobs_lease ON jobs (lease_owner);
