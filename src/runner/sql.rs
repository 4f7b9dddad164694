//! The runner's statements. Table and column names of a migration are quoted identifiers; every
//! value is bound.

use crate::batching::Strategy;
use crate::error::Result;
use crate::sql::{quote_ident, quote_table};

/// The identity, where it was stamped (NULL before that was recorded) and the pause flag.
pub const IDENTITY: &str = "SELECT name, serves, epoch, claims_paused, system_identifier, \
    database_oid FROM public.schema_fence_identity WHERE singleton";

/// Identity under a share lock: a cutover's stamp (an UPDATE) waits until the claim commits, so
/// the epoch a claim checks cannot change under it.
pub const IDENTITY_FOR_SHARE: &str = "SELECT name, serves, epoch, claims_paused, \
    system_identifier, database_oid FROM public.schema_fence_identity WHERE singleton FOR SHARE";

/// Whether the due row `m` may run now: not on hold, runnable by this library, the oldest
/// executable migration of its table among the allowed schemas, and its interval elapsed.
macro_rules! may_run {
    () => {
        r#"COALESCE((m.on_hold_until IS NULL OR m.on_hold_until < now())
    AND (m.batch_class_name = 'PrimaryKeyBatchingStrategy' OR (m.min_value IS NOT NULL AND m.max_value IS NOT NULL AND m.batch_class_name = 'LooseIndexScanBatchingStrategy'))
    AND m.id = (
        SELECT min(first.id) FROM batched_background_migrations first
        WHERE first.table_name = m.table_name AND first.status IN (1, 5)
          AND first.gitlab_schema = ANY($1::text[])
          AND (first.on_hold_until IS NULL OR first.on_hold_until < now())
          AND (first.batch_class_name = 'PrimaryKeyBatchingStrategy' OR (first.min_value IS NOT NULL AND first.max_value IS NOT NULL AND first.batch_class_name = 'LooseIndexScanBatchingStrategy')))
    AND COALESCE((
        SELECT j.created_at FROM batched_background_migration_jobs j
        WHERE j.batched_background_migration_id = m.id
        ORDER BY j.id DESC LIMIT 1), '-infinity') <= statement_timestamp() - make_interval(secs => m."interval"), false)"#
    };
}

/// One step of the walk: the first due row of the schema `$schema` (after `$after`, the row the
/// step before saw), with whether it may run.
macro_rules! due_step {
    ($schema:literal, $after:literal) => {
        concat!(
            r#"
    SELECT m.id, m.schema_fence_next_run_at AS next_run_at, "#,
            may_run!(),
            r#" AS ok
    FROM batched_background_migrations m
    WHERE m.status IN (1, 5)
      AND m.gitlab_schema = "#,
            $schema,
            r#"
      AND m.schema_fence_next_run_at <= statement_timestamp()"#,
            $after,
            r#"
    ORDER BY m.schema_fence_next_run_at, m.id
    LIMIT 1"#
        )
    };
}

/// The fetch of docs/architecture.md section 7: per table, the oldest executable migration of the allowed
/// schemas (`$1`: active or finalizing, not on hold, runnable by this library; GitLab's
/// `active_migrations_distinct_on_table`), when its interval has elapsed, at most `$2`: the ones
/// waiting longest first, those that never ran in queue order. A migration on hold or one this
/// library cannot run does not hold its table.
///
/// A bounded number of index probes whatever the data: for each allowed schema, a walk of
/// `index_batched_background_migrations_due` up to now (rows of other schemas, paused or
/// finished rows and rows not due yet are outside every range), one row per step until `$2`
/// of them may run, and per row the same-table and latest-batch probes that recheck what the
/// next-run time says. Each step is `ORDER BY ... LIMIT 1` after the last row seen, which only
/// the due index serves without sorting: no sample of `ANALYZE` makes GitLab's index on
/// `status` look cheaper (it did, 4 times in 20, for the range as one scan with `LIMIT $2`).
/// One text for both statements below, so the fetch and the claim cannot disagree on what may
/// run.
macro_rules! executable_migrations {
    () => {
        concat!(
            r#"
WITH RECURSIVE walk(gitlab_schema, id, next_run_at, ok, found) AS (
  SELECT allowed.gitlab_schema, c.id, c.next_run_at, c.ok, c.ok::int
  FROM unnest($1::text[]) AS allowed(gitlab_schema)
  CROSS JOIN LATERAL ("#,
            due_step!("allowed.gitlab_schema", ""),
            r#"
  ) c
  UNION ALL
  SELECT w.gitlab_schema, c.id, c.next_run_at, c.ok, w.found + c.ok::int
  FROM walk w
  CROSS JOIN LATERAL ("#,
            due_step!(
                "w.gitlab_schema",
                "
      AND (m.schema_fence_next_run_at, m.id) > (w.next_run_at, w.id)"
            ),
            r#"
  ) c
  WHERE w.found < $2::bigint
)
SELECT walk.id FROM walk WHERE walk.ok
ORDER BY walk.next_run_at, walk.id
LIMIT $2
"#
        )
    };
}

/// The fetch and the identity it depends on, in one statement (one round trip).
pub const FETCH_WITH_IDENTITY: &str = concat!(
    "SELECT i.name, i.serves, i.epoch, ARRAY(",
    executable_migrations!(),
    "), i.system_identifier, i.database_oid FROM public.schema_fence_identity i WHERE i.singleton"
);

/// The fetch inside a claim. It locks nothing: the claim then locks only the migration it takes
/// (`LOCK_MIGRATION`, skipping one another worker is claiming), so workers never wait on each
/// other and a worker whose first candidate is taken goes on to the next.
pub const FETCH: &str = executable_migrations!();

/// A running job whose worker is gone: its lease expired, or it has no lease (GitLab's own
/// worker took it) and has not moved for the runner's `stuck_after` (GitLab's stuck-job timeout,
/// an hour), bound as the given parameter in seconds. It may be claimed again while it has
/// attempts left, and fails for good otherwise.
macro_rules! abandoned {
    ($stuck_after:literal) => {
        concat!(
            "(lease_expires_at < now() \
              OR (lease_expires_at IS NULL AND updated_at < now() - make_interval(secs => ",
            $stuck_after,
            "::float8)))"
        )
    };
}

/// The migration, locked for this claim (still executable, runnable and of an allowed schema; not
/// on hold unless `$4`, a finalize, which GitLab runs regardless of holds; still due when `$6`, a
/// migration of the claim's own fetch, whose row another worker may have claimed since), with its
/// first batch to run again (pending, failed with attempts left, or abandoned with attempts left:
/// its worker died) and the end of the key ranges handed out so far. The migration's row
/// lock serialises claims of one migration, so the job rows need no locks of their own.
pub const LOCK_MIGRATION: &str = concat!(
    r#"
SELECT m.id, m.job_class_name, m.table_name, m.column_name, m.job_arguments::text, m.gitlab_schema,
       m.min_value, m.max_value, m.batch_size, m.sub_batch_size, m.pause_ms,
       r.id, r.min_value, r.max_value, r.batch_size, r.sub_batch_size, r.pause_ms, r.attempts,
       (SELECT max(max_value) FROM batched_background_migration_jobs
        WHERE batched_background_migration_id = m.id),
       m.batch_class_name
FROM batched_background_migrations m
LEFT JOIN LATERAL (
    SELECT id, min_value, max_value, batch_size, sub_batch_size, pause_ms, attempts
    FROM batched_background_migration_jobs
    WHERE batched_background_migration_id = m.id
      AND (status = 0
           OR (status = 2 AND attempts < $3)
           OR (status = 1 AND attempts < $3 AND "#,
    abandoned!("$5"),
    r#"))
    ORDER BY id
    LIMIT 1
) r ON true
WHERE m.id = $1 AND m.status IN (1, 5) AND m.gitlab_schema = ANY($2::text[])
  AND ($4 OR m.on_hold_until IS NULL OR m.on_hold_until < now())
  AND ($4 OR NOT $6 OR m.schema_fence_next_run_at <= statement_timestamp())
  AND (m.batch_class_name = 'PrimaryKeyBatchingStrategy' OR (m.min_value IS NOT NULL AND m.max_value IS NOT NULL AND m.batch_class_name = 'LooseIndexScanBatchingStrategy'))
FOR UPDATE OF m SKIP LOCKED
"#
);

/// Takes the migration's row lock before anything of the claim is read: a statement reads with
/// the snapshot it started with, so `LOCK_MIGRATION` alone, taking the lock just as another
/// worker's claim commits, would read the key ranges from before that claim and hand out the same
/// range again (found by `tests/claims.rs`). Skips a migration another worker is claiming.
pub const LOCK_CANDIDATE: &str =
    "SELECT id FROM batched_background_migrations WHERE id = $1 FOR UPDATE SKIP LOCKED";

pub const TAKE_JOB: &str = r#"
UPDATE batched_background_migration_jobs
SET status = 1, attempts = attempts + 1, started_at = now(), updated_at = now(),
    lease_owner = $2, lease_expires_at = now() + make_interval(secs => $3), claimed_epoch = $4
WHERE id = $1
"#;

/// The new job, and the migration's `started_at` on its first batch.
pub const INSERT_JOB: &str = r#"
WITH started AS (
    UPDATE batched_background_migrations SET started_at = now(), updated_at = now()
    WHERE id = $1 AND started_at IS NULL
)
INSERT INTO batched_background_migration_jobs
    (created_at, updated_at, batched_background_migration_id, min_value, max_value, batch_size,
     sub_batch_size, pause_ms, status, attempts, started_at, lease_owner, lease_expires_at,
     claimed_epoch)
VALUES (now(), now(), $1, $2, $3, $4, $5, $6, 1, 1, now(), $7, now() + make_interval(secs => $8), $9)
RETURNING id
"#;

/// Jobs that are not done: open ones, and failed ones that used up their attempts.
/// An abandoned running job without attempts left counts as failed for good.
pub const UNFINISHED_JOBS: &str = concat!(
    r#"
SELECT count(*) FILTER (WHERE NOT failed_for_good),
       count(*) FILTER (WHERE failed_for_good)
FROM (SELECT (status = 2 AND attempts >= $2) OR (status = 1 AND attempts >= $2 AND "#,
    abandoned!("$3"),
    r#") AS failed_for_good
      FROM batched_background_migration_jobs
      WHERE batched_background_migration_id = $1 AND status <> 3) open
"#
);

/// Records the abandoned running jobs without attempts left as failed, when their migration fails.
pub const FAIL_ABANDONED_JOBS: &str = concat!(
    r#"
UPDATE batched_background_migration_jobs
SET status = 2, finished_at = now(), updated_at = now(), lease_owner = NULL, lease_expires_at = NULL,
    metrics = metrics || jsonb_build_object('error',
        'abandoned while running (its worker died) after ' || attempts || ' attempts')
WHERE batched_background_migration_id = $1 AND status = 1 AND attempts >= $2 AND "#,
    abandoned!("$3"),
    "\n"
);

/// The runner finishes or fails only a migration that is still running (active or finalizing):
/// one an operator paused meanwhile stays paused, and is finished by the first claim after its
/// resume (its batches are all handed out).
pub const SET_MIGRATION_STATUS: &str = "UPDATE batched_background_migrations \
    SET status = $2, updated_at = now() WHERE id = $1 AND status IN (1, 5)";

/// Completes the job if the lease is still ours, and tells whether the key ranges handed out
/// reach the migration's end (then the migration may be finished). For the batch optimizer it
/// also returns, in the same round trip, the migration's batch sizes and the efficiencies of its
/// newest `$4` succeeded jobs, newest first (`optimizer::smoothed_efficiency`'s input), this
/// job's own included: the statement's snapshot predates its update, so this job comes from
/// `done` and the others from the table. NULL when the migration has no interval.
pub const COMPLETE_JOB: &str = r#"
WITH done AS (
    UPDATE batched_background_migration_jobs
    SET status = 3, finished_at = now(), updated_at = now(), metrics = $3::text::jsonb,
        lease_owner = NULL, lease_expires_at = NULL
    WHERE id = $1 AND lease_owner = $2 AND status = 1
    RETURNING id, batched_background_migration_id, started_at, finished_at
)
SELECT m.max_value <= (SELECT max(max_value) FROM batched_background_migration_jobs
                       WHERE batched_background_migration_id = m.id),
       m.batch_size, m.max_batch_size,
       CASE WHEN m."interval" > 0 THEN ARRAY(
           SELECT extract(epoch FROM recent.finished_at - recent.started_at)::float8 / m."interval"
           FROM (SELECT done.finished_at, done.started_at, done.id
                 WHERE done.started_at IS NOT NULL
                 UNION ALL
                 (SELECT j.finished_at, j.started_at, j.id
                  FROM batched_background_migration_jobs j
                  WHERE j.batched_background_migration_id = m.id AND j.status = 3
                    AND j.id <> done.id
                    AND j.started_at IS NOT NULL AND j.finished_at IS NOT NULL
                  ORDER BY j.finished_at DESC, j.id DESC
                  LIMIT $4::bigint)) recent
           ORDER BY recent.finished_at DESC, recent.id DESC
           LIMIT $4::bigint) END
FROM done JOIN batched_background_migrations m ON m.id = done.batched_background_migration_id
"#;

pub const FAIL_JOB: &str = r#"
UPDATE batched_background_migration_jobs
SET status = 2, finished_at = now(), updated_at = now(), lease_owner = NULL, lease_expires_at = NULL,
    metrics = jsonb_build_object('error', $3::text)
WHERE id = $1 AND lease_owner = $2 AND status = 1
RETURNING batched_background_migration_id
"#;

/// Halves a timed-out batch: the job keeps the lower half, a new pending job takes the rest. Both
/// halves start with their attempts unused (GitLab's split does the same): each is a new range.
pub const SHRINK_JOB: &str = r#"
UPDATE batched_background_migration_jobs
SET max_value = $3, batch_size = $4, sub_batch_size = LEAST(sub_batch_size, $4),
    status = 0, attempts = 0, lease_owner = NULL, lease_expires_at = NULL, updated_at = now()
WHERE id = $1 AND lease_owner = $2 AND status = 1
RETURNING batched_background_migration_id, sub_batch_size, pause_ms
"#;

pub const INSERT_PENDING_JOB: &str = r#"
INSERT INTO batched_background_migration_jobs
    (created_at, updated_at, batched_background_migration_id, min_value, max_value, batch_size,
     sub_batch_size, pause_ms, status)
VALUES (now(), now(), $1, $2, $3, $4, $5, $6, 0)
"#;

pub const LOCK_MIGRATION_ROW: &str =
    "SELECT id FROM batched_background_migrations WHERE id = $1 FOR UPDATE";

/// Whether the batches handed out reach the migration's last key.
pub const MIGRATION_EXHAUSTED: &str = "SELECT m.max_value, (SELECT max(max_value) \
    FROM batched_background_migration_jobs WHERE batched_background_migration_id = m.id) \
    FROM batched_background_migrations m WHERE m.id = $1 FOR UPDATE";

/// The failure ratio rule: more than half of at least 50 jobs failed.
pub const FAILURE_RATIO: &str = r#"
SELECT count(*), count(*) FILTER (WHERE status = 2)
FROM batched_background_migration_jobs WHERE batched_background_migration_id = $1
"#;

/// The `$3`-th key of the primary-key walk from `$1` to `$2`, or no row when fewer keys remain:
/// the batch's end in one index-only walk that skips keys instead of aggregating them (about
/// half of [`key_range`]'s time on 100,000 keys).
pub fn nth_key(table: &str, column: &str) -> Result<String> {
    Ok(nth_key_text(&quote_table(table)?, &quote_ident(column)))
}

/// [`nth_key`] over a table and column quoted already (or placeholders for them).
pub(super) fn nth_key_text(table: &str, column: &str) -> String {
    format!(
        "SELECT {column}::bigint FROM {table} WHERE {column} >= $1::bigint AND {column} <= $2::bigint \
         ORDER BY {column} OFFSET $3::bigint - 1 LIMIT 1"
    )
}

/// The first key from `$1` to `$2`, if any: whether a range shorter than a batch holds keys.
pub fn first_key(table: &str, column: &str) -> Result<String> {
    Ok(first_key_text(&quote_table(table)?, &quote_ident(column)))
}

/// [`first_key`] over a table and column quoted already (or placeholders for them).
pub(super) fn first_key_text(table: &str, column: &str) -> String {
    format!(
        "SELECT min({column})::bigint FROM {table} WHERE {column} >= $1::bigint AND {column} <= $2::bigint"
    )
}

/// The first key at or after `$1` and the last of at most `$3` keys from there, not past `$2`;
/// NULLs when no key is left; and how many keys there were. One index range walk. The bounds are
/// bigint and compared with the column in its own type (smallint, integer or bigint), so the
/// column's index serves the walk.
pub fn key_range(table: &str, column: &str, strategy: Strategy) -> Result<String> {
    let column = quote_ident(column);
    let table = quote_table(table)?;
    Ok(match strategy {
        Strategy::PrimaryKey => format!(
            "SELECT min(k), max(k), count(*) FROM (SELECT {column}::bigint AS k FROM {table} \
             WHERE {column} >= $1::bigint AND {column} <= $2::bigint ORDER BY {column} \
             LIMIT $3::bigint) keys"
        ),
        Strategy::LooseIndexScan => loose_key_range_text(&table, &column),
    })
}

/// GitLab's loose index scan: the distinct values, one index probe each; the recursion is
/// evaluated lazily, so the LIMIT stops it. Over a table and column quoted already.
pub(super) fn loose_key_range_text(table: &str, column: &str) -> String {
    format!(
        "WITH RECURSIVE v(k) AS ( \
               SELECT (SELECT min({column}) FROM {table} \
                       WHERE {column} >= $1::bigint AND {column} <= $2::bigint)::bigint \
               UNION ALL \
               SELECT (SELECT min({column}) FROM {table} \
                       WHERE {column} > v.k AND {column} <= $2::bigint)::bigint \
               FROM v WHERE v.k IS NOT NULL) \
             SELECT min(k), max(k), count(*) FROM \
               (SELECT k FROM v WHERE k IS NOT NULL LIMIT $3::bigint) keys"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fetch_and_the_claim_share_the_listings_runnable_condition() {
        let condition = crate::batching::RUNNABLE_CONDITION;
        assert!(FETCH.contains(condition));
        assert!(FETCH.contains(&condition.replace("m.", "first.")));
        assert!(LOCK_MIGRATION.contains(condition));
    }
}
