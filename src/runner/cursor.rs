//! Cursor batching: GitLab's composite-key migrations (`min_cursor`/`max_cursor`, GitLab 17.6),
//! batched in keyset order with row comparisons over the job class's cursor columns, stored when
//! this library queued the migration, or the table's primary key columns for a row GitLab wrote.
//!
//! GitLab's semantics, kept so that rows GitLab wrote resume where GitLab left them: a batch
//! starts strictly after the previous batch's `max_cursor` (the first one at the migration's
//! `min_cursor`, included, so that the first key, which queueing here stores there, is not
//! skipped); a job covers its `min_cursor` to its `max_cursor`, both included; nothing past the
//! migration's `max_cursor` is handed out.

use postgres::types::{ToSql, Type};
use postgres::{Client, Transaction};

use super::batch::{finish_if_done, Batch, Claimant};
use super::sql_job::SqlJobReport;
use super::statements::{Param, Statements};
use super::{sql, RunnerOptions};
use crate::batching::cursor_key_problem;
use crate::error::{Error, Result};
use crate::interrupt::Interrupt;
use crate::sql::{quote_ident, quote_table};

/// The key range of a cursor batch: the columns walked and the first and last key, both included.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CursorRange {
    pub columns: Vec<String>,
    pub min: Vec<i64>,
    pub max: Vec<i64>,
}

/// A cursor row that cannot run is held this long, with why, so it never stands in the way of
/// another migration; once the table is fixed it resumes by itself.
const HOLD_SECS: f64 = 600.0;

/// The migration's cursors (read through `to_jsonb`, so tables from before GitLab added the
/// columns are read too), the end of the last batch handed out, and the cursor columns stored
/// when this library queued it (none on a row GitLab wrote).
const MIGRATION_CURSORS: &str = "SELECT (to_jsonb(m) -> 'min_cursor')::text, \
    (to_jsonb(m) -> 'max_cursor')::text, \
    (SELECT j.max_cursor::text FROM batched_background_migration_jobs j \
     WHERE j.batched_background_migration_id = m.id AND j.max_cursor IS NOT NULL \
     ORDER BY j.max_cursor DESC LIMIT 1), \
    (to_jsonb(m) -> 'schema_fence_cursor_columns')::text \
    FROM batched_background_migrations m WHERE m.id = $1";

const JOB_CURSORS: &str = "SELECT min_cursor::text, max_cursor::text, batch_size, sub_batch_size, \
    pause_ms FROM batched_background_migration_jobs WHERE id = $1";

/// The primary key's columns in key order, with their types. `$1` is the quoted table name.
const PRIMARY_KEY: &str = "SELECT a.attname::text, format_type(a.atttypid, a.atttypmod) \
    FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey) \
    WHERE i.indrelid = to_regclass($1) AND i.indisprimary \
    ORDER BY array_position(i.indkey::int2[], a.attnum)";

/// The stored cursor columns in their order, with their types (NULL: no such column).
const CURSOR_COLUMNS: &str = "SELECT c.name, format_type(a.atttypid, NULL) \
    FROM unnest($2::text[]) WITH ORDINALITY c(name, ord) \
    LEFT JOIN pg_attribute a ON a.attrelid = to_regclass($1) AND a.attname = c.name \
     AND a.attnum > 0 AND NOT a.attisdropped \
    ORDER BY c.ord";

const HOLD: &str = "UPDATE batched_background_migrations SET on_hold_until = now() + \
    make_interval(secs => $2), schema_fence_hold_reason = $3, updated_at = now() WHERE id = $1";

/// The new job with its cursors (GitLab's shape: `min_value`/`max_value` NULL), and the
/// migration's `started_at` on its first batch.
const INSERT_JOB: &str = r#"
WITH started AS (
    UPDATE batched_background_migrations SET started_at = now(), updated_at = now()
    WHERE id = $1 AND started_at IS NULL
)
INSERT INTO batched_background_migration_jobs
    (created_at, updated_at, batched_background_migration_id, min_cursor, max_cursor, batch_size,
     sub_batch_size, pause_ms, status, attempts, started_at, lease_owner, lease_expires_at,
     claimed_epoch)
VALUES (now(), now(), $1, $2::text::jsonb, $3::text::jsonb, $4, $5, $6, 1, 1, now(), $7,
        now() + make_interval(secs => $8), $9)
RETURNING id
"#;

/// Whether the batches handed out reach the migration's `max_cursor` (then it may be finished).
const EXHAUSTED: &str =
    "SELECT COALESCE((SELECT j.max_cursor FROM batched_background_migration_jobs j \
    WHERE j.batched_background_migration_id = m.id AND j.max_cursor IS NOT NULL \
    ORDER BY j.max_cursor DESC LIMIT 1) >= m.max_cursor, false) \
    FROM batched_background_migrations m WHERE m.id = $1";

/// For a cursor batch: whether its migration's key ranges are all handed out. An id batch says
/// so in the statement that completes it; a cursor batch asks here.
pub(super) fn exhausted(
    client: &mut impl postgres::GenericClient,
    st: &mut Statements,
    batch: &Batch,
) -> Result<bool> {
    if batch.cursor.is_none() {
        return Ok(false);
    }
    let row = st.query_opt(client, EXHAUSTED, &[&batch.migration_id])?;
    Ok(row.is_some_and(|r| r.get(0)))
}

/// Claims the next batch of a cursor-batched migration, locked by the caller. `batch` holds the
/// migration's fields; `retry` is the job to run again, if any.
pub(super) fn claim(
    tx: &mut Transaction<'_>,
    st: &mut Statements,
    mut batch: Batch,
    retry: Option<(i64, i16)>,
    claimant: &Claimant<'_>,
    options: &RunnerOptions,
) -> Result<Option<Batch>> {
    let id = batch.migration_id;
    let row = st.query_one(tx, MIGRATION_CURSORS, &[&id])?;
    let (min, max, last): (Option<String>, Option<String>, Option<String>) =
        (row.get(0), row.get(1), row.get(2));
    let declared: Option<String> = row.get(3);
    let declared = declared
        .filter(|text| text != "null")
        .map(|text| serde_json::from_str::<Vec<String>>(&text))
        .transpose()
        .map_err(|e| {
            invalid(
                format!("migration {id}"),
                format!("schema_fence_cursor_columns: {e}"),
            )
        })?;
    let columns = match (min.as_deref(), max.as_deref()) {
        (Some(min), Some(max)) => {
            usable_columns(tx, st, &batch.table_name, declared.as_deref(), (min, max))?
        }
        _ => Err("no key range: min_value/max_value and min_cursor/max_cursor are NULL".into()),
    };
    let (columns, migration_min, migration_max) = match columns {
        Ok(found) => found,
        Err(why) => {
            let reason = format!("not runnable: {why}");
            st.execute(tx, HOLD, &[&id, &HOLD_SECS, &reason])?;
            return Ok(None);
        }
    };
    let lease = options.lease.as_secs_f64();
    if let Some((job_id, attempts)) = retry {
        let row = st.query_one(tx, JOB_CURSORS, &[&job_id])?;
        let keys = |i: usize| -> Result<Vec<i64>> {
            let text: Option<String> = row.get(i);
            parse_keys(text.as_deref().unwrap_or("null"))
                .map_err(|problem| invalid(format!("job {job_id}"), problem))
        };
        batch.job_id = job_id;
        batch.attempts = attempts + 1;
        // A halved job runs with its own, smaller sizes, not the migration's.
        batch.batch_size = row.get(2);
        batch.sub_batch_size = row.get(3);
        batch.pause_ms = row.get(4);
        batch.cursor = Some(Box::new(CursorRange {
            columns,
            min: keys(0)?,
            max: keys(1)?,
        }));
        st.execute(
            tx,
            sql::TAKE_JOB,
            &[&job_id, &claimant.owner, &lease, &claimant.epoch],
        )?;
        return Ok(Some(batch));
    }
    // The first batch starts at min_cursor, included: the first key when this library queued
    // the migration, a position before it in the rows of GitLab's tests; either way no key is
    // missed. Later batches start strictly after the last job's max_cursor.
    let (after, inclusive) = match last {
        Some(text) => (
            parse_keys(&text).map_err(|p| invalid(format!("migration {id}"), p))?,
            false,
        ),
        None => (migration_min, true),
    };
    let walk = walk_sql(&batch.table_name, &columns, inclusive)?;
    let limit = i64::from(batch.batch_size.max(1));
    let Some((first, last_key)) = walk_keys(tx, st, &walk, &after, &migration_max, limit)? else {
        finish_if_done(tx, st, id, options.limits())?;
        return Ok(None);
    };
    // The last batch reaches the migration's end, so keys added meanwhile are covered too.
    let end = last_key.unwrap_or(migration_max);
    let row = st.query_one(
        tx,
        INSERT_JOB,
        &[
            &id,
            &json(&first),
            &json(&end),
            &batch.batch_size,
            &batch.sub_batch_size,
            &batch.pause_ms,
            &claimant.owner,
            &lease,
            &claimant.epoch,
        ],
    )?;
    batch.job_id = row.get(0);
    batch.cursor = Some(Box::new(CursorRange {
        columns,
        min: first,
        max: end,
    }));
    Ok(Some(batch))
}

type Columns = (Vec<String>, Vec<i64>, Vec<i64>);

/// The columns to walk, checked against the migration's cursors: as many columns as the cursors
/// have values, each of an integer type. They are the cursor columns stored at queue time
/// (`declared`), or for a row GitLab wrote, the table's primary key. `Err` says why not.
fn usable_columns(
    tx: &mut Transaction<'_>,
    st: &mut Statements,
    table: &str,
    declared: Option<&[String]>,
    (min, max): (&str, &str),
) -> Result<std::result::Result<Columns, String>> {
    let (min, max) = match (parse_keys(min), parse_keys(max)) {
        (Ok(min), Ok(max)) => (min, max),
        (Err(why), _) | (_, Err(why)) => return Ok(Err(why)),
    };
    if min.len() != max.len() || min.is_empty() {
        return Ok(Err(format!(
            "min_cursor and max_cursor must have the same number of values, have {} and {}",
            min.len(),
            max.len()
        )));
    }
    let quoted = quote_table(table)?;
    let key: Vec<(String, Option<String>)> = match declared {
        Some(columns) => st
            .query(tx, CURSOR_COLUMNS, &[&quoted, &columns])?
            .iter()
            .map(|r| (r.get(0), r.get(1)))
            .collect(),
        None => st
            .query(tx, PRIMARY_KEY, &[&quoted])?
            .iter()
            .map(|r| (r.get(0), Some(r.get(1))))
            .collect(),
    };
    if let Some(why) = cursor_key_problem(table, min.len(), declared.is_some(), &key) {
        return Ok(Err(why));
    }
    Ok(Ok((key.into_iter().map(|(c, _)| c).collect(), min, max)))
}

/// A cursor as GitLab stores it: a JSON array of integers.
fn parse_keys(text: &str) -> std::result::Result<Vec<i64>, String> {
    let values: Vec<serde_json::Value> =
        serde_json::from_str(text).map_err(|_| format!("cursor {text} is not a JSON array"))?;
    values
        .iter()
        .map(|v| {
            v.as_i64()
                .ok_or_else(|| format!("cursor {text} holds {v}: only integer keys are batched"))
        })
        .collect()
}

pub(super) fn json(keys: &[i64]) -> String {
    serde_json::Value::from(keys.to_vec()).to_string()
}

fn invalid(what: String, problem: String) -> Error {
    Error::InvalidArgument { what, problem }
}

/// The first key after (`>=` when `inclusive`) the cursor `$1..$n`, not past `$n+1..$2n`, and
/// the `$2n+1`-th key from it (NULLs when there are fewer): two index probes, nothing buffered.
/// The bounds are bigint, compared with the columns in their own types.
pub(super) fn walk_sql(table: &str, columns: &[String], inclusive: bool) -> Result<String> {
    let table = quote_table(table)?;
    let n = columns.len();
    let quoted: Vec<String> = columns.iter().map(|c| quote_ident(c)).collect();
    let list = quoted.join(", ");
    let join = |items: Vec<String>| items.join(", ");
    let params = |from: usize| join((from..from + n).map(|i| format!("${i}::bigint")).collect());
    let keys = join(
        quoted
            .iter()
            .enumerate()
            .map(|(i, c)| format!("{c}::bigint AS k{i}"))
            .collect(),
    );
    let of = |alias: &str| join((0..n).map(|i| format!("{alias}.k{i}")).collect());
    let op = if inclusive { ">=" } else { ">" };
    let to = params(n + 1);
    Ok(format!(
        "SELECT {first}, {last} FROM \
         (SELECT {keys} FROM {table} WHERE ({list}) {op} ({from}) AND ({list}) <= ({to}) \
          ORDER BY {list} LIMIT 1) f \
         LEFT JOIN LATERAL (SELECT {keys} FROM {table} WHERE ({list}) >= ({first}) \
          AND ({list}) <= ({to}) ORDER BY {list} OFFSET ${limit}::bigint - 1 LIMIT 1) l ON true",
        first = of("f"),
        last = of("l"),
        from = params(1),
        limit = 2 * n + 1
    ))
}

/// The first key of a run and its last when the run has its full length.
type Walked = (Vec<i64>, Option<Vec<i64>>);

pub(super) fn walk_keys(
    client: &mut impl postgres::GenericClient,
    st: &mut Statements,
    walk: &str,
    from: &[i64],
    to: &[i64],
    limit: i64,
) -> Result<Option<Walked>> {
    let mut params: Vec<&dyn Param> = from.iter().map(|k| k as &dyn Param).collect();
    params.extend(to.iter().map(|k| k as &dyn Param));
    params.push(&limit);
    let Some(row) = st.query_opt(client, walk, &params)? else {
        return Ok(None);
    };
    let n = from.len();
    let first = (0..n).map(|i| row.get::<_, i64>(i)).collect();
    let last: Option<Vec<i64>> = (n..2 * n).map(|i| row.get::<_, Option<i64>>(i)).collect();
    Ok(Some((first, last)))
}

/// Runs a SQL job over a cursor batch, sub-batch by sub-batch in keyset order: the statement
/// takes the sub-batch's first key as `$1..$n` and its last as `$n+1..$2n` (both included).
pub(super) fn run_sql(
    client: &mut Client,
    prepared: bool,
    interrupt: &Interrupt,
    batch: &Batch,
    cursor: &CursorRange,
    statement: &str,
    local_settings: Option<&str>,
) -> Result<SqlJobReport> {
    let started = std::time::Instant::now();
    let mut st = Statements::new(prepared);
    let what = format!("the SQL job of batch {}", batch.job_id);
    let job = if prepared {
        let prepared = client.prepare(statement)?;
        let width = 2 * cursor.columns.len();
        if prepared.params().len() != width {
            return Err(invalid(
                format!("SQL job {}", batch.job_class_name),
                format!(
                    "over a cursor of {} columns ({}) its statement must take {width} parameters \
                     (the sub-batch's first key, then its last), it takes {}",
                    cursor.columns.len(),
                    cursor.columns.join(", "),
                    prepared.params().len()
                ),
            ));
        }
        Some(prepared)
    } else {
        None
    };
    let first_walk = walk_sql(&batch.table_name, &cursor.columns, true)?;
    let next_walk = walk_sql(&batch.table_name, &cursor.columns, false)?;
    let limit = i64::from(batch.sub_batch_size.max(1));
    let mut report = SqlJobReport::default();
    let mut from = cursor.min.clone();
    let mut walk = &first_walk;
    loop {
        interrupt.check(&what)?;
        let Some((first, last)) = walk_keys(client, &mut st, walk, &from, &cursor.max, limit)?
        else {
            break;
        };
        // The last sub-batch reaches the batch's end, so keys added meanwhile are covered too.
        let last = last.unwrap_or_else(|| cursor.max.clone());
        let keys: Vec<i64> = first.iter().chain(last.iter()).copied().collect();
        report.rows += match (&job, local_settings) {
            (Some(prepared), _) => execute_bound(client, prepared, &keys, batch.job_id)?,
            (None, settings) => {
                let mut tx = client.transaction()?;
                if let Some(settings) = settings {
                    tx.batch_execute(settings)?;
                }
                let params: Vec<&dyn Param> = keys.iter().map(|k| k as &dyn Param).collect();
                let rows = st.execute(&mut tx, statement, &params)?;
                tx.commit()?;
                rows
            }
        };
        report.sub_batches += 1;
        if last >= cursor.max {
            break;
        }
        from = last;
        walk = &next_walk;
        if batch.pause_ms > 0 {
            interrupt.sleep(
                std::time::Duration::from_millis(u64::from(batch.pause_ms.unsigned_abs())),
                &what,
            )?;
        }
    }
    report.millis = started.elapsed().as_millis();
    Ok(report)
}

/// Binds each key in the type PostgreSQL inferred for its parameter.
fn execute_bound(
    client: &mut Client,
    statement: &postgres::Statement,
    keys: &[i64],
    job_id: i64,
) -> Result<u64> {
    let mut values: Vec<Box<dyn ToSql + Sync>> = Vec::with_capacity(keys.len());
    for (i, (&value, kind)) in keys.iter().zip(statement.params()).enumerate() {
        let out_of_range = || {
            invalid(
                format!("key of batch {job_id}"),
                format!("{value} does not fit the statement's ${} ({kind})", i + 1),
            )
        };
        values.push(match *kind {
            Type::INT2 => Box::new(i16::try_from(value).map_err(|_| out_of_range())?),
            Type::INT4 => Box::new(i32::try_from(value).map_err(|_| out_of_range())?),
            _ => Box::new(value),
        });
    }
    let refs: Vec<&(dyn ToSql + Sync)> = values.iter().map(AsRef::as_ref).collect();
    Ok(client.execute(statement, &refs)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_walk_compares_rows_with_bound_values_and_quoted_names() {
        let sql = walk_sql("p_ci\"x", &["id".into(), "part\"ition".into()], false).unwrap();
        assert!(
            sql.contains("(\"id\", \"part\"\"ition\") > ($1::bigint, $2::bigint)"),
            "{sql}"
        );
        assert!(
            sql.contains("<= ($3::bigint, $4::bigint)") && sql.contains("OFFSET $5::bigint - 1"),
            "{sql}"
        );
        assert!(sql.contains("FROM \"p_ci\"\"x\""), "{sql}");
        assert!(walk_sql("t", &["a".into()], true)
            .unwrap()
            .contains("(\"a\") >= ($1::bigint)"));
    }

    #[test]
    fn cursors_are_json_arrays_of_integers() {
        assert_eq!(parse_keys("[1, 100]"), Ok(vec![1, 100]));
        assert!(parse_keys("[\"a\", 1]").unwrap_err().contains("integer"));
        assert!(parse_keys("{}").unwrap_err().contains("JSON array"));
        assert_eq!(json(&[3, 100]), "[3,100]");
    }
}
