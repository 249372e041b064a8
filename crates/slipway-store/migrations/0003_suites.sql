-- Test verdicts: from a build of a run (JUnit it wrote) or from an external lab about a candidate.
CREATE TABLE suite_results (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id       INTEGER REFERENCES runs (id),
    build        TEXT,
    candidate_id INTEGER REFERENCES candidates (id),
    name         TEXT NOT NULL,
    tests        INTEGER NOT NULL,
    failures     INTEGER NOT NULL,
    errors       INTEGER NOT NULL,
    skipped      INTEGER NOT NULL,
    source       TEXT NOT NULL,
    recorded_at  TEXT NOT NULL
);
CREATE INDEX suite_results_run ON suite_results (run_id);
CREATE INDEX suite_results_candidate ON suite_results (candidate_id);
