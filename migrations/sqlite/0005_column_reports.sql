-- What each column holds, typed at upload: number, category (its vocabulary, whose codes the
-- chunks' level cells index) or identifier, with its missing count and a summary. A JSON
-- array in stored order (features, then targets). Datasets stored before it have '[]':
-- complete numbers, as every dataset then was.
ALTER TABLE datasets ADD COLUMN column_reports TEXT NOT NULL DEFAULT '[]';
-- Rows whose target (any target column) is missing: stored, but left out of training.
ALTER TABLE datasets ADD COLUMN unlabelled_rows INTEGER NOT NULL DEFAULT 0;
