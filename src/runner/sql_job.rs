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
    let nth_key = client.prepare(&sql::nth_key(&batch.table_name, &batch.column_name)?)?;
    let first_key = client.prepare(&sql::first_key(&batch.table_name, &batch.column_name)?)?;
    let offset = i64::from(batch.sub_batch_size.max(1)) - 1;
    let mut report = SqlJobReport::default();
    let mut from = batch.min_value;
    while from <= batch.max_value {
        let Some(first) = client
            .query_opt(&first_key, &[&from, &batch.max_value])?
            .and_then(|r| r.get::<_, Option<i64>>(0))
        else {
            break;
        };
        let last: i64 = client
            .query_opt(&nth_key, &[&first, &batch.max_value, &offset])?
            .and_then(|r| r.get::<_, Option<i64>>(0))
            .unwrap_or(batch.max_value);
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
