//! The SQL job: a statement with `$1`/`$2` key bounds, run sub-batch by sub-batch with no Ruby.

use std::time::{Duration, Instant};

use postgres::Client;

use super::statements::Statements;
use super::{sql, Batch};
use crate::error::Result;
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
/// the sub-batch (bigint). Each sub-batch commits on its own, as GitLab's jobs do. `prepared`:
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
    let started = Instant::now();
    let key_range_sql = sql::key_range(&batch.table_name, &batch.column_name)?;
    let mut st = Statements::new(prepared);
    let limit = i64::from(batch.sub_batch_size.max(1));
    let mut report = SqlJobReport::default();
    let what = format!("the SQL job of batch {}", batch.job_id);
    interrupt.check(&what)?;
    if batch.sub_batch_size >= batch.batch_size {
        // The batch holds at most batch_size keys: it is its own single sub-batch, no walk needed.
        report.rows = execute(
            client,
            &mut st,
            statement,
            (batch.min_value, batch.max_value),
            local_settings,
        )?;
        report.sub_batches = 1;
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
        report.rows += execute(client, &mut st, statement, (first, last), local_settings)?;
        report.sub_batches += 1;
        if last >= batch.max_value {
            break;
        }
        from = last + 1;
        if batch.pause_ms > 0 {
            interrupt.sleep(Duration::from_millis(batch.pause_ms as u64), &what)?;
        }
    }
    report.millis = started.elapsed().as_millis();
    Ok(report)
}

fn execute(
    client: &mut Client,
    st: &mut Statements,
    statement: &str,
    (first, last): (i64, i64),
    local_settings: Option<&str>,
) -> Result<u64> {
    let Some(settings) = local_settings else {
        return st.execute(client, statement, &[&first, &last]);
    };
    let mut tx = client.transaction()?;
    tx.batch_execute(settings)?;
    let rows = st.execute(&mut tx, statement, &[&first, &last])?;
    tx.commit()?;
    Ok(rows)
}
