//! GitLab's job transition log (`batched_background_migration_job_transition_logs`): one row per
//! status change of a batch, written by triggers on the jobs table, in monthly partitions kept for
//! a configurable time (GitLab: `partitioned_by :created_at, strategy: :monthly, retain_for:
//! 6.months`).
//!
//! Triggers rather than statements of the runner: every path that changes a job's status (claim,
//! complete, fail, split, an abandoned job failed for good, an operator's retry, GitLab's own
//! worker on the same table) is logged, and none can forget to. The cost is one row inserted into
//! a partitioned table per status change, two per batch (claim and completion), in the same round
//! trip as the change; `bench/transition_log_bench.rb` measures it.

use super::{int, text, Db};
use crate::error::Result;

/// GitLab's retention of the log: six months.
pub const DEFAULT_RETAIN_MONTHS: i32 = 6;

/// Months of partitions created ahead of now (GitLab's monthly strategy keeps six).
pub const HEADROOM_MONTHS: i32 = 6;

/// The triggers and the partition maintenance function; idempotent. Runs after the jobs and log
/// tables exist (GitLab's or this library's).
///
/// The trigger reads the failure from the job's `metrics->>'error'`, which the runner writes as
/// `Class: message` for a Ruby exception (GitLab's `exception_class`, `exception_message`); a
/// message without a class prefix is stored as the message alone. A job inserted already running
/// (the claim's first batch) is logged as pending → running, the transition it stands for.
pub const CREATE_TRIGGERS: &str = r#"
CREATE OR REPLACE FUNCTION public.schema_fence_log_job_transition() RETURNS trigger
LANGUAGE plpgsql AS $log$
DECLARE
    previous smallint := CASE WHEN TG_OP = 'INSERT' THEN 0 ELSE OLD.status END;
    error text := CASE WHEN NEW.status = 2 THEN NEW.metrics->>'error' END;
    class text := substring(error FROM '^([A-Z][A-Za-z0-9_]*(?:::[A-Z][A-Za-z0-9_]*)*): ');
BEGIN
    INSERT INTO batched_background_migration_job_transition_logs
        (batched_background_migration_job_id, created_at, updated_at, previous_status, next_status,
         exception_class, exception_message)
    VALUES (NEW.id, now(), now(), previous, NEW.status, left(class, 100),
            left(CASE WHEN class IS NULL THEN error ELSE substr(error, length(class) + 3) END, 1000));
    RETURN NULL;
END
$log$;

CREATE OR REPLACE TRIGGER schema_fence_job_transition_on_insert
    AFTER INSERT ON batched_background_migration_jobs
    FOR EACH ROW WHEN (NEW.status <> 0)
    EXECUTE FUNCTION public.schema_fence_log_job_transition();

CREATE OR REPLACE TRIGGER schema_fence_job_transition_on_update
    AFTER UPDATE OF status ON batched_background_migration_jobs
    FOR EACH ROW WHEN (OLD.status IS DISTINCT FROM NEW.status)
    EXECUTE FUNCTION public.schema_fence_log_job_transition();

-- Creates the monthly partitions from this month to `headroom` months ahead where no partition
-- covers them yet, and drops the partitions wholly older than `retain` months (rows of those
-- months in a default partition are deleted); a NULL `retain` drops nothing (the install's run). Partitions are named as GitLab names them
-- (`<table>_YYYYMM`), in gitlab_partitions_dynamic where that schema exists (a GitLab database),
-- else beside the table. Rows a default partition holds for a new month move into it, since
-- PostgreSQL refuses a partition whose rows sit in the default one. One maintainer at a time.
CREATE OR REPLACE FUNCTION public.schema_fence_maintain_transition_logs(retain integer, headroom integer)
RETURNS TABLE (action text, partition_name text)
LANGUAGE plpgsql AS $maintain$
DECLARE
    parent regclass := 'batched_background_migration_job_transition_logs'::regclass;
    parent_name text;
    home text;
    month timestamptz;
    cutoff timestamptz := COALESCE(date_trunc('month', now()) - make_interval(months => retain), '-infinity');
    default_part regclass;
    part record;
    name text;
BEGIN
    IF retain < 1 OR headroom IS NULL OR headroom < 0 THEN
        RAISE EXCEPTION 'transition log retention must be at least one month and headroom not negative (got % and %)',
            retain, headroom USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF NOT pg_try_advisory_xact_lock(parent::oid::bigint) THEN
        RETURN;
    END IF;
    -- Loaded from a schema.rb, which cannot say "partitioned": a plain table, kept by deleting.
    IF (SELECT relkind FROM pg_class WHERE oid = parent) <> 'p' THEN
        EXECUTE format('DELETE FROM %s WHERE created_at < $1', parent) USING cutoff;
        RETURN;
    END IF;
    SELECT c.relname, n.nspname INTO parent_name, home
    FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = parent;
    IF to_regnamespace('gitlab_partitions_dynamic') IS NOT NULL THEN
        home := 'gitlab_partitions_dynamic';
    END IF;
    SELECT i.inhrelid::regclass INTO default_part
    FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
    WHERE i.inhparent = parent AND pg_get_expr(c.relpartbound, c.oid) = 'DEFAULT';

    FOR part IN
        SELECT i.inhrelid::regclass AS rel,
               CASE WHEN b ~ '^FOR VALUES FROM \(MINVALUE\)' THEN '-infinity'::timestamptz
                    ELSE substring(b FROM '^FOR VALUES FROM \(''([^'']+)''\)')::timestamptz END AS lo,
               CASE WHEN b ~ 'TO \(MAXVALUE\)$' THEN 'infinity'::timestamptz
                    ELSE substring(b FROM 'TO \(''([^'']+)''\)$')::timestamptz END AS hi
        FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid,
             LATERAL pg_get_expr(c.relpartbound, c.oid) b
        WHERE i.inhparent = parent AND b <> 'DEFAULT'
    LOOP
        IF part.hi <= cutoff THEN
            -- Named before the drop: a dropped table's regclass prints as its oid.
            action := 'dropped'; partition_name := part.rel::text;
            EXECUTE format('DROP TABLE %s', part.rel);
            RETURN NEXT;
        END IF;
    END LOOP;
    IF default_part IS NOT NULL THEN
        EXECUTE format('DELETE FROM %s WHERE created_at < $1', default_part) USING cutoff;
    END IF;

    FOR month IN
        SELECT generate_series(date_trunc('month', now()),
                               date_trunc('month', now()) + make_interval(months => headroom),
                               interval '1 month')
    LOOP
        CONTINUE WHEN EXISTS (
            SELECT 1
            FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid,
                 LATERAL pg_get_expr(c.relpartbound, c.oid) b
            WHERE i.inhparent = parent AND b <> 'DEFAULT'
              AND (CASE WHEN b ~ '^FOR VALUES FROM \(MINVALUE\)' THEN '-infinity'::timestamptz
                        ELSE substring(b FROM '^FOR VALUES FROM \(''([^'']+)''\)')::timestamptz END)
                  < month + interval '1 month'
              AND (CASE WHEN b ~ 'TO \(MAXVALUE\)$' THEN 'infinity'::timestamptz
                        ELSE substring(b FROM 'TO \(''([^'']+)''\)$')::timestamptz END) > month);
        name := parent_name || '_' || to_char(month, 'YYYYMM');
        IF to_regclass(format('%I.%I', home, name)) IS NOT NULL THEN
            RAISE EXCEPTION 'cannot add the transition log''s partition for %: %.% exists and is not a partition of %',
                to_char(month, 'YYYY-MM'), home, name, parent
                USING ERRCODE = 'duplicate_table', HINT = 'rename or drop that table, then run the install again';
        END IF;
        EXECUTE format('CREATE TABLE %I.%I (LIKE %s INCLUDING DEFAULTS INCLUDING CONSTRAINTS)',
                       home, name, parent);
        IF default_part IS NOT NULL THEN
            EXECUTE format('WITH moved AS (DELETE FROM %s WHERE created_at >= $1 AND created_at < $2 '
                           'RETURNING *) INSERT INTO %I.%I SELECT * FROM moved', default_part, home, name)
                USING month, month + interval '1 month';
        END IF;
        EXECUTE format('ALTER TABLE %s ATTACH PARTITION %I.%I FOR VALUES FROM (%L) TO (%L)',
                       parent, home, name, month, month + interval '1 month');
        action := 'created'; partition_name := format('%I.%I', home, name)::regclass::text;
        RETURN NEXT;
    END LOOP;
END
$maintain$;
"#;

/// What one maintenance did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MaintainReport {
    /// Partitions created, as `regclass` prints them (schema-qualified outside `search_path`).
    pub created: Vec<String>,
    /// Partitions dropped (wholly older than the retention), named the same way.
    pub dropped: Vec<String>,
}

/// Keeps the log's monthly partitions: this month and [`HEADROOM_MONTHS`] ahead exist, those
/// wholly older than `retain_months` are dropped (none with `None`). Another session maintaining
/// at the same time makes this one a no-op. Runs in the caller's transaction.
pub fn maintain(db: &mut dyn Db, retain_months: Option<i32>) -> Result<MaintainReport> {
    let retain = retain_months.map(|m| m.to_string());
    let headroom = HEADROOM_MONTHS.to_string();
    let rows = db.query(
        "SELECT action, partition_name FROM \
         public.schema_fence_maintain_transition_logs($1::int, $2::int)",
        &[retain.as_deref(), Some(&headroom)],
    )?;
    let mut report = MaintainReport::default();
    for row in &rows {
        let name = text(row, 1)?.to_string();
        match text(row, 0)? {
            "created" => report.created.push(name),
            _ => report.dropped.push(name),
        }
    }
    Ok(report)
}

/// One logged status change of a batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transition {
    pub migration_id: i64,
    pub job_id: i64,
    pub previous_status: i64,
    pub next_status: i64,
    pub exception_class: Option<String>,
    pub exception_message: Option<String>,
    /// ISO 8601, UTC.
    pub created_at: String,
}

/// The latest status changes of the jobs of each migration in `migration_ids`, at most `limit`
/// per migration, newest first. One statement: the job-id index of the log, per migration's
/// latest jobs.
pub const RECENT: &str = r#"
SELECT m.id::text, t.job_id::text, t.previous_status::text, t.next_status::text, t.exception_class,
       t.exception_message, t.created_at
FROM unnest($1::bigint[]) AS m(id)
CROSS JOIN LATERAL (
    SELECT l.id AS log_id, l.batched_background_migration_job_id AS job_id, l.previous_status, l.next_status,
           l.exception_class, l.exception_message,
           to_char(l.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') AS created_at
    FROM (SELECT id FROM batched_background_migration_jobs
          WHERE batched_background_migration_id = m.id ORDER BY id DESC LIMIT $2::int) j
    JOIN batched_background_migration_job_transition_logs l
      ON l.batched_background_migration_job_id = j.id
    ORDER BY l.created_at DESC, l.id DESC
    LIMIT $2::int) t
ORDER BY m.id, t.created_at DESC, t.log_id DESC
"#;

/// The latest `limit` transitions of each migration (see [`RECENT`]).
pub fn recent(db: &mut dyn Db, migration_ids: &[i64], limit: i32) -> Result<Vec<Transition>> {
    let ids = format!(
        "{{{}}}",
        migration_ids
            .iter()
            .map(i64::to_string)
            .collect::<Vec<_>>()
            .join(",")
    );
    let limit = limit.to_string();
    let rows = db.query(RECENT, &[Some(&ids), Some(&limit)])?;
    rows.iter()
        .map(|row| {
            Ok(Transition {
                migration_id: int(row, 0)?,
                job_id: int(row, 1)?,
                previous_status: int(row, 2)?,
                next_status: int(row, 3)?,
                exception_class: row[4].clone(),
                exception_message: row[5].clone(),
                created_at: text(row, 6)?.to_string(),
            })
        })
        .collect()
}
