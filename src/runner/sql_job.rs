//! The SQL job: a statement with `$1`/`$2` key bounds, run sub-batch by sub-batch with no Ruby.

use std::time::{Duration, Instant};

use postgres::types::{ToSql, Type};
use postgres::{Client, Statement};

use super::{sql, Batch};
use crate::error::{Error, Result};

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
/// the sub-batch, bound in the type PostgreSQL infers for them (the column's smallint, integer or
/// bigint). Each sub-batch commits on its own, as GitLab's jobs do.
pub fn run(client: &mut Client, batch: &Batch, statement: &str) -> Result<SqlJobReport> {
    let started = Instant::now();
    let statement = client.prepare(statement)?;
    let statement = BoundStatement::new(statement, batch)?;
    let key_range = client.prepare(&sql::key_range(
        &batch.table_name,
        &batch.column_name,
        batch.strategy,
    )?)?;
    let limit = i64::from(batch.sub_batch_size.max(1));
    let mut report = SqlJobReport::default();
    if batch.sub_batch_size >= batch.batch_size {
        // The batch holds at most batch_size keys: it is its own single sub-batch, no walk needed.
        report.rows = statement.execute(client, batch.min_value, batch.max_value)?;
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
        report.rows += statement.execute(client, first, last)?;
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
