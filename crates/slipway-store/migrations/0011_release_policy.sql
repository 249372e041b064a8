-- The release policy: a person's hold on a milestone, candidates marked bad (never promoted
-- automatically again), and the policy's timeline (what it did and why).
CREATE TABLE holds (
    project    TEXT NOT NULL,
    milestone  INTEGER NOT NULL,
    held_by    TEXT NOT NULL,
    reason     TEXT,
    held_at    TEXT NOT NULL,
    PRIMARY KEY (project, milestone)
);

CREATE TABLE bad_candidates (
    candidate_id  INTEGER PRIMARY KEY,
    reason        TEXT NOT NULL,
    marked_at     TEXT NOT NULL
);

-- `key` makes an action exactly once (e.g. `rollback:<release id>`): a second evaluation that
-- reaches the same decision finds it recorded.
CREATE TABLE policy_events (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    project       TEXT NOT NULL,
    milestone     INTEGER NOT NULL,
    kind          TEXT NOT NULL,
    event_key     TEXT UNIQUE,
    candidate_id  INTEGER,
    release_id    INTEGER,
    detail        TEXT NOT NULL,
    results       TEXT NOT NULL DEFAULT '[]',
    at            TEXT NOT NULL
);
CREATE INDEX policy_events_milestone ON policy_events (project, milestone, id);

-- Webhook notifications to send (`[notify] url`), each once: sent_at is set when the endpoint
-- answered 2xx; attempts and the last error otherwise.
CREATE TABLE notifications (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    event_key   TEXT NOT NULL UNIQUE,
    body        TEXT NOT NULL,
    created_at  TEXT NOT NULL,
    sent_at     TEXT,
    attempts    INTEGER NOT NULL DEFAULT 0,
    last_error  TEXT
);
