-- Output a build wrote past its log limit and that was dropped (bytes); NULL when whole.
ALTER TABLE logs ADD COLUMN dropped_bytes INTEGER;
