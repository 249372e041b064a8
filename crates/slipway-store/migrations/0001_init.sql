CREATE TABLE runs (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    instance     TEXT NOT NULL,
    project      TEXT NOT NULL,
    job          TEXT NOT NULL,
    milestone    INTEGER NOT NULL,
    channel      TEXT NOT NULL,
    branch       TEXT NOT NULL,
    commit_sha   TEXT,
    flow         TEXT NOT NULL,
    status       TEXT NOT NULL,
    error        TEXT,
    owner_pid    INTEGER,
    owner_start  TEXT,
    created_at   TEXT NOT NULL,
    finished_at  TEXT
);
CREATE INDEX runs_instance ON runs (instance, id);
CREATE INDEX runs_status ON runs (status);

CREATE TABLE builds (
    run_id       INTEGER NOT NULL REFERENCES runs (id),
    name         TEXT NOT NULL,
    position     INTEGER NOT NULL,
    needs        TEXT NOT NULL,
    status       TEXT NOT NULL,
    error        TEXT,
    started_at   TEXT,
    finished_at  TEXT,
    PRIMARY KEY (run_id, name)
);

CREATE TABLE steps (
    run_id       INTEGER NOT NULL REFERENCES runs (id),
    build        TEXT NOT NULL,
    idx          INTEGER NOT NULL,
    command      TEXT NOT NULL,
    status       TEXT NOT NULL,
    exit_code    INTEGER,
    pgid         INTEGER,
    pgid_start   TEXT,
    started_at   TEXT NOT NULL,
    finished_at  TEXT,
    PRIMARY KEY (run_id, build, idx)
);

CREATE TABLE artifacts (
    run_id       INTEGER NOT NULL REFERENCES runs (id),
    build        TEXT NOT NULL,
    path         TEXT NOT NULL,
    sha256       TEXT NOT NULL,
    size         INTEGER NOT NULL,
    PRIMARY KEY (run_id, build, path)
);
CREATE INDEX artifacts_sha ON artifacts (sha256);

CREATE TABLE logs (
    run_id       INTEGER NOT NULL REFERENCES runs (id),
    build        TEXT NOT NULL,
    path         TEXT NOT NULL,
    lines        INTEGER NOT NULL DEFAULT 0,
    bytes        INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (run_id, build)
);
