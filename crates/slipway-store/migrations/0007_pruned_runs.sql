-- When gc removed a run's builds, steps, artifacts, logs and folder but kept the run and what it
-- published: buckets keep older objects (pool files, by-hash indices) for clients, so the record
-- of who published them stays. NULL for a whole run.
ALTER TABLE runs ADD COLUMN pruned_at TEXT;
