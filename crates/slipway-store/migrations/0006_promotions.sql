-- A promotion or rollback as a recorded operation: begun before production changes, done in the
-- same transaction that records its release. An operation that is not done was interrupted
-- (its owner died) or failed; the next promotion of the milestone finishes it first.
CREATE TABLE promotions (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    project      TEXT NOT NULL,
    milestone    INTEGER NOT NULL,
    candidate_id INTEGER NOT NULL REFERENCES candidates (id),
    kind         TEXT NOT NULL,
    promoted_by  TEXT NOT NULL,
    -- started | failed (unfinished) | done | cancelled (nothing was written)
    state        TEXT NOT NULL,
    -- The process running it (pid + kernel start time); 0 when nobody does (failed).
    owner_pid    INTEGER NOT NULL,
    owner_start  TEXT NOT NULL,
    attempts     INTEGER NOT NULL DEFAULT 1,
    error        TEXT,
    release_id   INTEGER REFERENCES releases (id),
    started_at   TEXT NOT NULL,
    updated_at   TEXT NOT NULL
);
-- At most one unfinished operation per milestone: the database serializes promoters.
CREATE UNIQUE INDEX promotions_open ON promotions (project, milestone) WHERE state IN ('started', 'failed');
