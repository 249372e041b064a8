-- The cgroup holding a running step (slipway/<owner>/<step>), ended at recovery.
ALTER TABLE steps ADD COLUMN cgroup TEXT;
