//! The next-run time: a column of this library's own on GitLab's `batched_background_migrations`,
//! so that the fetch finds the migrations that are due with one index range per allowed schema
//! (docs/architecture.md section 7: stale rows and migrations not due cost nothing).
//!
//! `schema_fence_next_run_at` is the earliest moment a migration may get its next batch: the
//! later of its hold (`on_hold_until`) and its latest batch's `created_at` plus its `interval`
//! (`-infinity` before its first batch and without a hold). Triggers keep it, so it stays true
//! whoever writes the tables: this library, GitLab's own workers or an operator's `UPDATE`.
//! The fetch still checks the hold and the interval on each row it returns, so the column only
//! decides which rows are looked at, never that a migration runs early.

/// Idempotent: the install runs it on every database, again and again; on an existing install it
/// adds what is missing and fills the column of rows written before it existed.
pub const CREATE_NEXT_RUN: &str = r#"
ALTER TABLE batched_background_migrations
    ADD COLUMN IF NOT EXISTS schema_fence_next_run_at timestamptz;

-- The later of the hold and the latest batch's start plus the interval.
CREATE OR REPLACE FUNCTION public.schema_fence_next_run_at(migration_id bigint,
                                                           on_hold_until timestamptz,
                                                           run_interval smallint)
RETURNS timestamptz LANGUAGE sql STABLE AS $next_run$
    SELECT GREATEST(COALESCE(on_hold_until, '-infinity'),
                    COALESCE((SELECT j.created_at + make_interval(secs => run_interval)
                              FROM batched_background_migration_jobs j
                              WHERE j.batched_background_migration_id = migration_id
                              ORDER BY j.id DESC LIMIT 1), '-infinity'))
$next_run$;

CREATE OR REPLACE FUNCTION public.schema_fence_migration_next_run() RETURNS trigger
LANGUAGE plpgsql AS $migration$
BEGIN
    NEW.schema_fence_next_run_at :=
        public.schema_fence_next_run_at(NEW.id, NEW.on_hold_until, NEW."interval");
    RETURN NEW;
END
$migration$;

-- A new batch moves its migration's next run to the batch's start plus the interval.
CREATE OR REPLACE FUNCTION public.schema_fence_job_next_run() RETURNS trigger
LANGUAGE plpgsql AS $job$
BEGIN
    UPDATE batched_background_migrations m
    SET schema_fence_next_run_at = GREATEST(COALESCE(m.on_hold_until, '-infinity'),
                                            NEW.created_at + make_interval(secs => m."interval"))
    WHERE m.id = NEW.batched_background_migration_id;
    RETURN NULL;
END
$job$;

-- Only when what the time depends on changes: the claim's own updates of the row cost nothing.
CREATE OR REPLACE TRIGGER schema_fence_next_run_on_insert
    BEFORE INSERT ON batched_background_migrations
    FOR EACH ROW EXECUTE FUNCTION public.schema_fence_migration_next_run();

CREATE OR REPLACE TRIGGER schema_fence_next_run_on_update
    BEFORE UPDATE ON batched_background_migrations
    FOR EACH ROW
    WHEN (OLD.on_hold_until IS DISTINCT FROM NEW.on_hold_until
          OR OLD."interval" IS DISTINCT FROM NEW."interval"
          OR NEW.schema_fence_next_run_at IS NULL)
    EXECUTE FUNCTION public.schema_fence_migration_next_run();

CREATE OR REPLACE TRIGGER schema_fence_next_run_on_job
    AFTER INSERT ON batched_background_migration_jobs
    FOR EACH ROW EXECUTE FUNCTION public.schema_fence_job_next_run();

-- Rows written before the column existed (an upgrade, or GitLab's own database).
UPDATE batched_background_migrations m
SET schema_fence_next_run_at = public.schema_fence_next_run_at(m.id, m.on_hold_until, m."interval")
WHERE m.schema_fence_next_run_at IS NULL;

-- The fetch's index: per allowed schema, the executable migrations by next run. Paused, finished
-- and failed rows are not in it; stale rows are under another schema; rows not due yet lie past
-- the range's end.
CREATE INDEX IF NOT EXISTS index_batched_background_migrations_due
    ON batched_background_migrations (gitlab_schema, schema_fence_next_run_at, id)
    WHERE status IN (1, 5);
"#;
