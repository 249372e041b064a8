-- Presubmit from code review (Gerrit). What Slipway last saw of each change it watches.
CREATE TABLE review_changes (
    change_number     INTEGER PRIMARY KEY,
    project           TEXT NOT NULL,
    branch            TEXT NOT NULL,
    change_id         TEXT NOT NULL,
    subject           TEXT NOT NULL,
    owner             TEXT NOT NULL,
    status            TEXT NOT NULL,
    current_patchset  INTEGER NOT NULL,
    current_revision  TEXT NOT NULL,
    url               TEXT NOT NULL,
    updated           TEXT NOT NULL,
    seen_at           TEXT NOT NULL
);

-- The vote history of a label on a patch set (one row per reviewer and time, Gerrit's clock in
-- nanoseconds): every observation adds what it shows, duplicates fall on the key.
CREATE TABLE review_votes (
    change_number  INTEGER NOT NULL,
    patchset       INTEGER NOT NULL,
    label          TEXT NOT NULL,
    account        TEXT NOT NULL,
    at             INTEGER NOT NULL,
    value          INTEGER NOT NULL,
    PRIMARY KEY (change_number, patchset, label, account, at)
);

-- How many of the label's crossings a job has started runs for, per patch set: a run is queued
-- in the transaction that raises `fired` from the value read, so one crossing starts one run.
CREATE TABLE review_triggers (
    change_number  INTEGER NOT NULL,
    patchset       INTEGER NOT NULL,
    job            TEXT NOT NULL,
    fired          INTEGER NOT NULL,
    PRIMARY KEY (change_number, patchset, job)
);

-- The change and patch set of a review-triggered run, and its vote back: pending -> sending
-- (an attempt may have reached Gerrit) -> posted | skipped | failed | none (nothing to say).
CREATE TABLE review_runs (
    run_id         INTEGER PRIMARY KEY,
    change_number  INTEGER NOT NULL,
    patchset       INTEGER NOT NULL,
    revision       TEXT NOT NULL,
    job            TEXT NOT NULL,
    vote_state     TEXT NOT NULL DEFAULT 'pending',
    vote_value     INTEGER,
    vote_attempts  INTEGER NOT NULL DEFAULT 0,
    vote_next_at   INTEGER,
    vote_note      TEXT
);
CREATE INDEX review_runs_change ON review_runs (change_number, patchset);
CREATE INDEX review_runs_vote ON review_runs (vote_state);

-- Where the next poll's query starts (the newest `updated` seen), per review server + project.
CREATE TABLE review_cursor (
    source   TEXT PRIMARY KEY,
    updated  TEXT NOT NULL
);
