-- Runs are created `queued` by the service and claimed by its dispatcher; `trigger` says what
-- asked for the run (continuous, manual, retry, cli), `requested_by` who (a token's name),
-- `retry_of` the interrupted run a retry repeats (a run is retried once).
ALTER TABLE runs ADD COLUMN trigger TEXT;
ALTER TABLE runs ADD COLUMN requested_by TEXT;
ALTER TABLE runs ADD COLUMN retry_of INTEGER;
ALTER TABLE runs ADD COLUMN started_at TEXT;
CREATE INDEX runs_job_milestone ON runs (job, milestone, id);

-- Each head commit a continuous instance has seen, with the run it started: the unique key
-- makes "one run per new head" hold across restarts and racing pollers.
CREATE TABLE heads (
    job          TEXT NOT NULL,
    milestone    INTEGER NOT NULL,
    commit_sha   TEXT NOT NULL,
    run_id       INTEGER,
    seen_at      TEXT NOT NULL,
    PRIMARY KEY (job, milestone, commit_sha)
);
