-- What each publish build wrote: the raw material of a candidate.
CREATE TABLE published (
    run_id       INTEGER NOT NULL REFERENCES runs (id),
    build        TEXT NOT NULL,
    bucket       TEXT NOT NULL,
    prefix       TEXT NOT NULL,
    path         TEXT NOT NULL,
    sha256       TEXT NOT NULL,
    size         INTEGER NOT NULL,
    PRIMARY KEY (run_id, bucket, prefix, path)
);

-- What one successful continuous run published to staging for one milestone.
CREATE TABLE candidates (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    project      TEXT NOT NULL,
    milestone    INTEGER NOT NULL,
    run_id       INTEGER NOT NULL UNIQUE REFERENCES runs (id),
    commit_sha   TEXT,
    digest       TEXT NOT NULL,
    objects      INTEGER NOT NULL,
    created_at   TEXT NOT NULL
);
CREATE INDEX candidates_milestone ON candidates (project, milestone, id);

-- A candidate made live in production (a promotion or a rollback).
CREATE TABLE releases (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    project      TEXT NOT NULL,
    milestone    INTEGER NOT NULL,
    candidate_id INTEGER NOT NULL REFERENCES candidates (id),
    kind         TEXT NOT NULL,
    promoted_by  TEXT NOT NULL,
    promoted_at  TEXT NOT NULL
);
CREATE INDEX releases_milestone ON releases (project, milestone, id);
