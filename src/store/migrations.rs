//! Reading the tracking rows of one database, for status and the Ruby query API.

use super::waiting::{self, Schedule, Waiting};
use super::{int, opt_int, text, Db, Row};
use crate::error::Result;

/// GitLab's statuses of a batched background migration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Paused,
    Active,
    Finished,
    Failed,
    Finalizing,
    Finalized,
    /// A code GitLab no longer writes (its old `aborted`, 2) or never did: listed, never run.
    Unknown(i16),
}

impl Status {
    /// The statuses GitLab writes today.
    pub const ALL: [Status; 6] = [
        Status::Paused,
        Status::Active,
        Status::Finished,
        Status::Failed,
        Status::Finalizing,
        Status::Finalized,
    ];

    /// The status GitLab names `name` (`"paused"`, `"active"`, ...).
    pub fn from_name(name: &str) -> Option<Status> {
        Status::ALL.into_iter().find(|s| s.name() == name)
    }

    pub fn from_code(code: i64) -> Option<Status> {
        Some(match code {
            0 => Status::Paused,
            1 => Status::Active,
            3 => Status::Finished,
            4 => Status::Failed,
            5 => Status::Finalizing,
            6 => Status::Finalized,
            _ => return None,
        })
    }

    /// The statuses an operator's change may move a migration to this one from (the one
    /// transition table of the steering operations; the runner's own moves are its statements').
    pub fn changed_from(self) -> &'static [Status] {
        match self {
            Status::Paused => &[Status::Active],
            Status::Active => &[Status::Paused, Status::Failed],
            Status::Finalized => &[Status::Finished],
            Status::Finished | Status::Failed | Status::Finalizing | Status::Unknown(_) => &[],
        }
    }

    pub fn code(self) -> i16 {
        match self {
            Status::Paused => 0,
            Status::Active => 1,
            Status::Finished => 3,
            Status::Failed => 4,
            Status::Finalizing => 5,
            Status::Finalized => 6,
            Status::Unknown(code) => code,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Status::Paused => "paused",
            Status::Active => "active",
            Status::Finished => "finished",
            Status::Failed => "failed",
            Status::Finalizing => "finalizing",
            Status::Finalized => "finalized",
            Status::Unknown(_) => "unknown",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct MigrationRow {
    pub id: i64,
    pub job_class_name: String,
    pub table_name: String,
    pub column_name: String,
    /// JSON text of the arguments array.
    pub job_arguments: String,
    pub gitlab_schema: String,
    pub status: Status,
    /// NULL on a cursor-batched row.
    pub min_value: Option<i64>,
    pub max_value: Option<i64>,
    /// JSON text of GitLab's cursors (`min_cursor`/`max_cursor`), where the row has them.
    pub min_cursor: Option<String>,
    pub max_cursor: Option<String>,
    pub batch_class_name: String,
    /// Why this library cannot run the row; `None` when it can (see [`crate::batching`]).
    pub not_runnable: Option<String>,
    pub batch_size: i64,
    pub sub_batch_size: i64,
    pub interval_seconds: i64,
    pub pause_ms: i64,
    pub jobs_succeeded: i64,
    pub jobs_failed: i64,
    /// Keys covered by succeeded jobs, summed (a key is covered once: jobs do not overlap).
    pub keys_done: i64,
    pub created_at: String,
    /// What decides whether it waits, read with the row.
    pub schedule: Schedule,
}

impl MigrationRow {
    /// Why it is not running now, if it waits (see [`waiting::waiting`]).
    pub fn waiting(&self) -> Option<Waiting> {
        waiting::waiting(self.status, self.interval_seconds, &self.schedule)
    }

    /// Progress as a fraction of the key range; 1.0 once finished.
    pub fn progress(&self) -> f64 {
        if matches!(self.status, Status::Finished | Status::Finalized) {
            return 1.0;
        }
        let (Some(min), Some(max)) = (self.min_value, self.max_value) else {
            return 0.0;
        };
        let range = (max - min + 1).max(1) as f64;
        (self.keys_done as f64 / range).clamp(0.0, 1.0)
    }
}

const LIST: &str = r#"
SELECT m.id::text, m.job_class_name, m.table_name, m.column_name, m.job_arguments::text,
       m.gitlab_schema, m.status::text, m.min_value::text, m.max_value::text,
       m.batch_size::text, m.sub_batch_size::text, m."interval"::text, m.pause_ms::text,
       COALESCE(j.succeeded, 0)::text, COALESCE(j.failed, 0)::text, COALESCE(j.keys_done, 0)::text,
       m.created_at::text, m.batch_class_name,
       -- Through to_jsonb: tables from before GitLab 17.6 have no cursor columns.
       (to_jsonb(m) -> 'min_cursor')::text, (to_jsonb(m) -> 'max_cursor')::text,
       -- The schedule (store/waiting.rs), on the database's clock.
       extract(epoch FROM c.now)::float8::text, extract(epoch FROM m.on_hold_until)::float8::text,
       COALESCE(to_jsonb(m) ->> 'schema_fence_hold_reason', to_jsonb(m) ->> 'on_hold_reason'),
       (SELECT min(first.id) FROM batched_background_migrations first
        WHERE first.table_name = m.table_name AND first.id < m.id AND first.status IN (1, 5)
          AND (first.on_hold_until IS NULL OR first.on_hold_until < c.now)
          AND first.min_value IS NOT NULL AND first.max_value IS NOT NULL
          AND first.batch_class_name IN ('PrimaryKeyBatchingStrategy', 'LooseIndexScanBatchingStrategy'))::text,
       (SELECT extract(epoch FROM l.created_at)::float8 FROM batched_background_migration_jobs l
        WHERE l.batched_background_migration_id = m.id ORDER BY l.id DESC LIMIT 1)::text,
       COALESCE(j.running, 0)::text, COALESCE(j.retryable, 0)::text, COALESCE(j.pending, 0)::text,
       c.workers::text,
       -- A cursor row's walk key (batching::cursor_key_problem): its stored cursor columns, or
       -- the table's primary key, each with its type, read as the claim reads them.
       (SELECT jsonb_build_object('declared', w.declared, 'key',
                   COALESCE(jsonb_agg(jsonb_build_array(k.name, k.kind) ORDER BY k.ord)
                            FILTER (WHERE k.name IS NOT NULL), '[]'::jsonb))::text
        FROM (SELECT jsonb_typeof(to_jsonb(m) -> 'schema_fence_cursor_columns') = 'array' AS declared,
                     to_regclass(CASE WHEN strpos(m.table_name, '.') > 0
                                      THEN quote_ident(split_part(m.table_name, '.', 1)) || '.' ||
                                           quote_ident(split_part(m.table_name, '.', 2))
                                      ELSE quote_ident(m.table_name) END) AS rel) w
        LEFT JOIN LATERAL (
            SELECT c.name, format_type(a.atttypid, NULL) AS kind, c.ord
            FROM jsonb_array_elements_text(CASE WHEN w.declared
                     THEN to_jsonb(m) -> 'schema_fence_cursor_columns' ELSE '[]'::jsonb END)
                 WITH ORDINALITY c(name, ord)
            LEFT JOIN pg_attribute a ON a.attrelid = w.rel AND a.attname = c.name
                 AND a.attnum > 0 AND NOT a.attisdropped
            UNION ALL
            SELECT a.attname::text, format_type(a.atttypid, NULL),
                   array_position(i.indkey::int2[], a.attnum)::bigint
            FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey)
            WHERE NOT w.declared AND i.indrelid = w.rel AND i.indisprimary
        ) k ON true
        WHERE (m.min_value IS NULL OR m.max_value IS NULL)
          AND jsonb_typeof(to_jsonb(m) -> 'min_cursor') = 'array'
        GROUP BY w.declared)
FROM batched_background_migrations m
CROSS JOIN (
    SELECT now() AS now,
           (SELECT count(*) FROM pg_stat_activity
            WHERE datname = current_database() AND application_name LIKE 'schema\_fence/%/runner') AS workers
) c
LEFT JOIN LATERAL (
    SELECT count(*) FILTER (WHERE status = 3) AS succeeded,
           count(*) FILTER (WHERE status = 2) AS failed,
           sum(max_value - min_value + 1) FILTER (WHERE status = 3) AS keys_done,
           count(*) FILTER (WHERE status = 1) AS running,
           -- The runner's default attempt limit (RunnerOptions::max_attempts).
           count(*) FILTER (WHERE status = 2 AND attempts < 3) AS retryable,
           count(*) FILTER (WHERE status = 0) AS pending
    FROM batched_background_migration_jobs
    WHERE batched_background_migration_id = m.id
) j ON true
ORDER BY m.id
"#;

/// Every tracking row of the database `db` reached, in queue order.
pub fn list(db: &mut dyn Db) -> Result<Vec<MigrationRow>> {
    db.query(LIST, &[])?.iter().map(parse).collect()
}

/// Whether the key the claim would walk fits the row's cursors (width and integer types), from
/// the listing's walk key (column 29); `None` when it fits or was not read.
fn walk_key_problem(row: &Row, min_cursor: &str, table: &str) -> Option<String> {
    let walk: serde_json::Value = serde_json::from_str(row.get(29)?.as_deref()?).ok()?;
    let width = serde_json::from_str::<Vec<serde_json::Value>>(min_cursor)
        .ok()?
        .len();
    let key: Vec<(String, Option<String>)> = walk["key"]
        .as_array()?
        .iter()
        .map(|pair| {
            (
                pair[0].as_str().unwrap_or_default().to_string(),
                pair[1].as_str().map(ToString::to_string),
            )
        })
        .collect();
    let declared = walk["declared"].as_bool().unwrap_or(false);
    crate::batching::cursor_key_problem(table, width, declared, &key)
}

fn parse(row: &Row) -> Result<MigrationRow> {
    let status_code = int(row, 6)?;
    let json = |i: usize| {
        row.get(i)
            .and_then(std::clone::Clone::clone)
            .filter(|v| v != "null")
    };
    let (min_value, max_value) = (opt_int(row, 7)?, opt_int(row, 8)?);
    let (min_cursor, max_cursor) = (json(18), json(19));
    let batch_class_name = text(row, 17)?.to_string();
    let float = |i: usize| {
        row.get(i)
            .and_then(|v| v.as_deref())
            .and_then(|v| v.parse::<f64>().ok())
    };
    let status = Status::from_code(status_code).unwrap_or(Status::Unknown(
        i16::try_from(status_code).unwrap_or(i16::MIN),
    ));
    let not_runnable = match status {
        Status::Unknown(code) => Some(format!("unknown status {code}")),
        _ => crate::batching::not_runnable_reason(
            &batch_class_name,
            min_value.is_some() && max_value.is_some(),
            min_cursor.is_some() && max_cursor.is_some(),
        )
        .or_else(|| match (&min_cursor, &max_cursor) {
            (Some(min), Some(max)) if min_value.is_none() || max_value.is_none() => {
                crate::batching::cursor_shape_problem(min, max)
                    .or_else(|| walk_key_problem(row, min, text(row, 2).unwrap_or_default()))
            }
            _ => None,
        }),
    };
    Ok(MigrationRow {
        id: int(row, 0)?,
        job_class_name: text(row, 1)?.to_string(),
        table_name: text(row, 2)?.to_string(),
        column_name: text(row, 3)?.to_string(),
        job_arguments: text(row, 4)?.to_string(),
        gitlab_schema: text(row, 5)?.to_string(),
        status,
        min_value,
        max_value,
        min_cursor,
        max_cursor,
        batch_class_name,
        not_runnable,
        batch_size: int(row, 9)?,
        sub_batch_size: int(row, 10)?,
        interval_seconds: int(row, 11)?,
        pause_ms: int(row, 12)?,
        jobs_succeeded: int(row, 13)?,
        jobs_failed: int(row, 14)?,
        keys_done: opt_int(row, 15)?.unwrap_or(0),
        created_at: text(row, 16)?.to_string(),
        schedule: Schedule {
            now: float(20).unwrap_or_default(),
            on_hold_until: float(21),
            hold_reason: row.get(22).and_then(std::clone::Clone::clone),
            behind: opt_int(row, 23)?,
            last_batch_at: float(24),
            running: int(row, 25)?,
            retryable: int(row, 26)?,
            pending: int(row, 27)?,
            workers: int(row, 28)?,
        },
    })
}

/// Changes a migration's status (pause, resume, finalize) in one statement that succeeds only
/// from the statuses [`Status::changed_from`] allows, so it never overwrites what a runner has
/// just written; returns whether it changed.
pub fn set_status(db: &mut dyn Db, id: i64, status: Status) -> Result<bool> {
    let code = status.code().to_string();
    let id = id.to_string();
    let from = format!(
        "{{{}}}",
        status
            .changed_from()
            .iter()
            .map(|s| s.code().to_string())
            .collect::<Vec<_>>()
            .join(",")
    );
    let rows = db.query(
        "UPDATE batched_background_migrations SET status = $2::smallint, updated_at = now() \
         WHERE id = $1::bigint AND status = ANY($3::smallint[]) RETURNING id",
        &[Some(&id), Some(&code), Some(&from)],
    )?;
    Ok(!rows.is_empty())
}

/// The id of the migration queued with this key, tag included.
pub fn find_id(
    db: &mut dyn Db,
    job_class_name: &str,
    table_name: &str,
    column_name: &str,
    job_arguments_json: &str,
    tag: &str,
) -> Result<Option<i64>> {
    let rows = db.query(
        "SELECT id::text FROM batched_background_migrations WHERE job_class_name = $1 AND table_name = $2 \
         AND column_name = $3 AND job_arguments = $4::jsonb AND gitlab_schema = $5",
        &[
            Some(job_class_name),
            Some(table_name),
            Some(column_name),
            Some(job_arguments_json),
            Some(tag),
        ],
    )?;
    rows.first().map(|r| int(r, 0)).transpose()
}
