//! The tracking tables in PostgreSQL (docs/architecture.md section 5): install, identity, enqueue, listing.
//!
//! Every operation is written against [`Db`], so it runs the same on the core's own connection
//! (`postgres::Client`) and on a Rails migration's connection inside its transaction (the binding
//! implements `Db` over the Ruby `PG::Connection`). Parameters travel as text and results come
//! back as text, so both sides agree on one wire format.

mod error;
pub use error::StoreError;

mod client;
pub mod enqueue;
mod enqueue_cursor;
pub mod identity;
pub mod install;
pub mod jobs;
pub mod migrations;
pub mod next_run;
pub mod report;
pub mod retag;
pub mod schema;
pub mod steering;
pub mod transition_log;
pub mod waiting;

pub use enqueue::{queue, QueueOutcome, QueueRequest};
pub use identity::Identity;
pub use install::{install, InstallReport};
pub use migrations::{MigrationRow, Status};
pub use retag::{retag, RetagChange, RetagReport};

use crate::error::{Error, Result};

/// One result row, every column as text (NULL as `None`).
pub type Row = Vec<Option<String>>;

/// A PostgreSQL session that runs statements with bound text parameters.
pub trait Db {
    /// Runs one statement; `params` are bound (`$1`, `$2`, ...), never spliced into `sql`.
    fn query(&mut self, sql: &str, params: &[Option<&str>]) -> Result<Vec<Row>>;

    /// Runs parameterless statements (DDL), possibly several separated by semicolons.
    fn batch(&mut self, sql: &str) -> Result<()>;
}

pub(crate) fn text(row: &Row, i: usize) -> Result<&str> {
    row.get(i).and_then(|v| v.as_deref()).ok_or_else(|| {
        Error::unexpected(format!(
            "expected a value in column {i} of a tracking-table row"
        ))
    })
}

pub(crate) fn int(row: &Row, i: usize) -> Result<i64> {
    let value = text(row, i)?;
    value
        .parse()
        .map_err(|_| Error::unexpected(format!("expected an integer in column {i}, got {value:?}")))
}

pub(crate) fn opt_int(row: &Row, i: usize) -> Result<Option<i64>> {
    match row.get(i).and_then(|v| v.as_deref()) {
        None => Ok(None),
        Some(_) => int(row, i).map(Some),
    }
}
