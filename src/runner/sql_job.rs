//! The SQL job: a statement with `$1`/`$2` key bounds, run sub-batch by sub-batch with no Ruby.

use std::time::{Duration, Instant};

use postgres::types::{ToSql, Type};
use postgres::{Client, Statement};

use super::statements::Statements;
use super::{sql, sub_batches, Batch};
use crate::batching::Strategy;
use crate::error::{Error, Result};
use crate::interrupt::Interrupt;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SqlJobReport {
    pub sub_batches: u32,
    pub rows: u64,
    pub millis: u128,
}

impl SqlJobReport {
    pub fn metrics_json(&self) -> String {
        format!(
            "{{\"sub_batches\":{},\"rows\":{},\"millis\":{}}}",
            self.sub_batches, self.rows, self.millis
        )
    }
}

/// Runs `statement` for each sub-batch of `batch`: `$1` and `$2` are the first and last key of
/// the sub-batch, bound in the type PostgreSQL infers for them on a session of our own (the
/// column's smallint, integer or bigint), and as bigint behind a pooler (where PostgreSQL compares
/// and assigns them across integer types). Each sub-batch commits on its own, as GitLab's jobs do. `prepared`:
/// whether statements may stay prepared on the session (not behind a transaction pooler, where
/// each is parsed, bound and run in one round trip). An interrupt ends it between sub-batches
/// and during the pause; the running statement is cancelled by the interrupt's cancel request.
pub fn run(
    client: &mut Client,
    prepared: bool,
    interrupt: &Interrupt,
    batch: &Batch,
    statement: &str,
    timeouts: (Duration, Duration, Duration),
) -> Result<SqlJobReport> {
    let (job_timeout, bookkeeping_timeout, lock_timeout) = timeouts;
    let job_ms = job_timeout.as_millis().max(1);
    if !prepared {
        let local = format!(
            "SET LOCAL statement_timeout = {job_ms}; SET LOCAL lock_timeout = {}",
            lock_timeout.as_millis().max(1)
        );
        return run_sub_batches(client, prepared, interrupt, batch, statement, Some(&local));
    }
    // A session of our own: the job's timeout holds while it runs, the bookkeeping's after.
    client.batch_execute(&format!("SET statement_timeout = {job_ms}"))?;
    let outcome = run_sub_batches(client, prepared, interrupt, batch, statement, None);
    let restored = client.batch_execute(&format!(
        "SET statement_timeout = {}",
        bookkeeping_timeout.as_millis().max(1)
    ));
    let report = outcome?;
    restored?;
    Ok(report)
}

/// Each statement of the job; `local_settings` (behind a pooler) runs it in a transaction of its
/// own with those `SET LOCAL`s.
fn run_sub_batches(
    client: &mut Client,
    prepared: bool,
    interrupt: &Interrupt,
    batch: &Batch,
    statement: &str,
    local_settings: Option<&str>,
) -> Result<SqlJobReport> {
    if let Some(cursor) = &batch.cursor {
        return super::cursor::run_sql(
            client,
            prepared,
            interrupt,
            batch,
            cursor,
            statement,
            local_settings,
        );
    }
    let started = Instant::now();
    let key_range_sql = sql::key_range(&batch.table_name, &batch.column_name, batch.strategy)?;
    let mut st = Statements::new(prepared);
    let job = if prepared {
        Job::Bound(BoundStatement::new(client.prepare(statement)?, batch)?)
    } else {
        Job::Text(statement)
    };
    let limit = i64::from(batch.sub_batch_size.max(1));
    let mut report = SqlJobReport::default();
    let what = format!("the SQL job of batch {}", batch.job_id);
    interrupt.check(&what)?;
    let ranges = match batch.consecutive_sub_batches() {
        Some(ranges) => Some(ranges),
        None if batch.strategy == Strategy::PrimaryKey => {
            let starts_sql = sub_batches::starts_sql(&batch.table_name, &batch.column_name)?;
            let starts: Vec<i64> = st
                .query(
                    client,
                    &starts_sql,
                    &[&batch.min_value, &batch.max_value, &limit],
                )?
                .iter()
                .map(|row| row.get(0))
                .collect();
            Some(sub_batches::bounds(&starts, batch.max_value))
        }
        None => None,
    };
    if let Some(ranges) = ranges {
        for (i, range) in ranges.into_iter().enumerate() {
            if i > 0 && batch.pause_ms > 0 {
                interrupt.sleep(
                    Duration::from_millis(u64::from(batch.pause_ms.unsigned_abs())),
                    &what,
                )?;
            }
            interrupt.check(&what)?;
            report.rows += execute(client, &mut st, &job, range, local_settings)?;
            report.sub_batches += 1;
        }
        report.millis = started.elapsed().as_millis();
        return Ok(report);
    }
    let mut from = batch.min_value;
    while from <= batch.max_value {
        interrupt.check(&what)?;
        // One index range walk gives the sub-batch's first and last key.
        let row = st.query_one(client, &key_range_sql, &[&from, &batch.max_value, &limit])?;
        let (Some(first), Some(last)) =
            (row.get::<_, Option<i64>>(0), row.get::<_, Option<i64>>(1))
        else {
            break;
        };
        let count: i64 = row.get(2);
        // The last sub-batch reaches the batch's end, so keys added meanwhile are covered too.
        let last = if count < limit { batch.max_value } else { last };
        report.rows += execute(client, &mut st, &job, (first, last), local_settings)?;
        report.sub_batches += 1;
        if last >= batch.max_value {
            break;
        }
        from = last + 1;
        if batch.pause_ms > 0 {
            interrupt.sleep(
                Duration::from_millis(u64::from(batch.pause_ms.unsigned_abs())),
                &what,
            )?;
        }
    }
    report.millis = started.elapsed().as_millis();
    Ok(report)
}

/// The job's statement: prepared once with its key types on a session of our own, or its text
/// behind a pooler.
enum Job<'a> {
    Bound(BoundStatement),
    Text(&'a str),
}

fn execute(
    client: &mut Client,
    st: &mut Statements,
    job: &Job<'_>,
    (first, last): (i64, i64),
    local_settings: Option<&str>,
) -> Result<u64> {
    match (job, local_settings) {
        (Job::Bound(bound), _) => bound.execute(client, first, last),
        (Job::Text(statement), None) => st.execute(client, statement, &[&first, &last]),
        (Job::Text(statement), Some(settings)) => {
            let mut tx = client.transaction()?;
            tx.batch_execute(settings)?;
            let rows = st.execute(&mut tx, statement, &[&first, &last])?;
            tx.commit()?;
            Ok(rows)
        }
    }
}

/// A SQL job's statement with its two key parameters' types.
struct BoundStatement {
    statement: Statement,
    types: [Type; 2],
    job_id: i64,
}

impl BoundStatement {
    fn new(statement: Statement, batch: &Batch) -> Result<Self> {
        let params = statement.params();
        if params.len() != 2 {
            return Err(Error::InvalidArgument {
                what: format!("SQL job {}", batch.job_class_name),
                problem: format!(
                    "its statement must take exactly two parameters ($1 and $2, the sub-batch's \
                     first and last key), it takes {}",
                    params.len()
                ),
            });
        }
        Ok(BoundStatement {
            types: [params[0].clone(), params[1].clone()],
            statement,
            job_id: batch.job_id,
        })
    }

    fn execute(&self, client: &mut Client, first: i64, last: i64) -> Result<u64> {
        let first = self.key(0, first)?;
        let last = self.key(1, last)?;
        Ok(client.execute(&self.statement, &[first.as_ref(), last.as_ref()])?)
    }

    fn key(&self, i: usize, value: i64) -> Result<Box<dyn ToSql + Sync>> {
        let out_of_range = || Error::InvalidArgument {
            what: format!("key of batch {}", self.job_id),
            problem: format!(
                "{value} does not fit the statement's ${} ({})",
                i + 1,
                self.types[i]
            ),
        };
        Ok(match self.types[i] {
            Type::INT2 => Box::new(i16::try_from(value).map_err(|_| out_of_range())?),
            Type::INT4 => Box::new(i32::try_from(value).map_err(|_| out_of_range())?),
            _ => Box::new(value),
        })
    }
}
