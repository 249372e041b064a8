-- Suite results bound to what they tested: the target digest (a candidate's manifest digest),
-- the environment that served it, the report's own digest (duplicates are recorded once),
-- the verdict and the failed cases, when, where to read more, and who reported it.
--
-- A build's result is recorded while its run is still going, before the run's candidate (and so
-- its digest) exists: such rows keep `target_digest` NULL and are bound to their run; reads
-- resolve the digest through `candidates.run_id`.
ALTER TABLE suite_results ADD COLUMN suite TEXT NOT NULL DEFAULT '';
ALTER TABLE suite_results ADD COLUMN environment TEXT NOT NULL DEFAULT 'staging';
ALTER TABLE suite_results ADD COLUMN release_id INTEGER REFERENCES releases (id);
ALTER TABLE suite_results ADD COLUMN target_digest TEXT;
ALTER TABLE suite_results ADD COLUMN report_digest TEXT;
ALTER TABLE suite_results ADD COLUMN status TEXT NOT NULL DEFAULT 'passed';
ALTER TABLE suite_results ADD COLUMN failed_cases TEXT NOT NULL DEFAULT '[]';
ALTER TABLE suite_results ADD COLUMN started_at TEXT;
ALTER TABLE suite_results ADD COLUMN ended_at TEXT;
ALTER TABLE suite_results ADD COLUMN link TEXT;
ALTER TABLE suite_results ADD COLUMN reporter TEXT;

-- Earlier rows: a build's result is named by its build, a lab's by its report; both were about
-- staging. Their failed cases were not kept; the report digest is unknown (never a duplicate).
UPDATE suite_results SET suite = COALESCE(build, name);
UPDATE suite_results SET status = CASE WHEN failures + errors > 0 THEN 'failed' ELSE 'passed' END;
UPDATE suite_results SET reporter = 'cli' WHERE build IS NULL;
UPDATE suite_results SET source = 'build:' || run_id || '/' || build WHERE build IS NOT NULL AND run_id IS NOT NULL;
UPDATE suite_results
   SET target_digest = (SELECT c.digest FROM candidates c WHERE c.id = suite_results.candidate_id)
 WHERE candidate_id IS NOT NULL;
UPDATE suite_results
   SET target_digest = (SELECT c.digest FROM candidates c WHERE c.run_id = suite_results.run_id)
 WHERE target_digest IS NULL AND run_id IS NOT NULL;

CREATE UNIQUE INDEX suite_results_once ON suite_results (suite, target_digest, report_digest);
CREATE INDEX suite_results_digest ON suite_results (target_digest);
