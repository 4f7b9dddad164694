//! The SQL job: a statement with `$1`/`$2` key bounds, run sub-batch by sub-batch with no Ruby.

use std::time::{Duration, Instant};

use postgres::Client;

use super::{sql, Batch};
use crate::error::Result;

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
/// the sub-batch (bigint). Each sub-batch commits on its own, as GitLab's jobs do.
pub fn run(client: &mut Client, batch: &Batch, statement: &str) -> Result<SqlJobReport> {
    let started = Instant::now();
    let statement = client.prepare(statement)?;
    let key_range = client.prepare(&sql::key_range(&batch.table_name, &batch.column_name)?)?;
    let limit = i64::from(batch.sub_batch_size.max(1));
    let mut report = SqlJobReport::default();
    if batch.sub_batch_size >= batch.batch_size {
        // The batch holds at most batch_size keys: it is its own single sub-batch, no walk needed.
        report.rows = client.execute(&statement, &[&batch.min_value, &batch.max_value])?;
        report.sub_batches = 1;
        report.millis = started.elapsed().as_millis();
        return Ok(report);
    }
    let mut from = batch.min_value;
    while from <= batch.max_value {
        // One index range walk gives the sub-batch's first and last key.
        let row = client.query_one(&key_range, &[&from, &batch.max_value, &limit])?;
        let (Some(first), Some(last)) =
            (row.get::<_, Option<i64>>(0), row.get::<_, Option<i64>>(1))
        else {
            break;
        };
        let count: i64 = row.get(2);
        // The last sub-batch reaches the batch's end, so keys added meanwhile are covered too.
        let last = if count < limit { batch.max_value } else { last };
        report.rows += client.execute(&statement, &[&first, &last])?;
        report.sub_batches += 1;
        if last >= batch.max_value {
            break;
        }
        from = last + 1;
        if batch.pause_ms > 0 {
            std::thread::sleep(Duration::from_millis(batch.pause_ms as u64));
        }
    }
    report.millis = started.elapsed().as_millis();
    Ok(report)
}
