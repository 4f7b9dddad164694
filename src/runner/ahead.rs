//! The walk ahead: while a batch runs, a thread of the runner's own walks the keys from the
//! batch's end to where the migration's next batch will end, on a second connection, so that
//! the next claim (`public.schema_fence_claim`) finds the end it would otherwise walk to itself
//! on the path of every batch (4.3 ms per 100,000 keys, 7% of one unbatched UPDATE's time).
//!
//! A hint cannot misplace a key. The claim takes it only when the migration's next batch starts
//! where the hint's walk started, with the same batch size, and its end lies between that start
//! and the migration's last key; any such end tiles the keys exactly as a walk would (the next
//! batch starts right after it). A stale walk (keys added or deleted since) only makes that batch
//! a little larger or smaller, as keys written after a claim's own walk do.

use std::sync::mpsc::{self, Receiver, Sender};
use std::thread;
use std::time::Duration;

use postgres::types::Type;

use super::batch::Batch;
use super::sql;
use crate::batching::Strategy;
use crate::connect::Connector;
use crate::error::Result;

/// A walk to do: from `start`, the `batch_size`-th key of `table`'s `column`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Walk {
    migration_id: i64,
    table: String,
    column: String,
    start: i64,
    batch_size: i64,
}

/// What a walk found, as the claim function's `p_ahead` takes it: migration id, start, batch
/// size, end.
pub(super) type Hint = [i64; 4];

/// The walking thread and its two channels; a runner has one once its first batch was claimed.
pub(super) struct WalkAhead {
    walks: Sender<Walk>,
    hints: Receiver<Hint>,
    /// The process that started the thread: a forked child has no such thread.
    pid: u32,
}

impl WalkAhead {
    /// Starts the thread; it connects on its first walk and ends when the runner drops this.
    pub(super) fn start(connector: Connector, timeout: Duration) -> WalkAhead {
        let (walks, todo) = mpsc::channel::<Walk>();
        let (found, hints) = mpsc::channel::<Hint>();
        // Detached: it ends when `walks` is dropped, after the walk it may be in.
        let spawned = thread::Builder::new()
            .name("schema_fence walk ahead".into())
            .spawn(move || walk_all(&connector, timeout, &todo, &found));
        let (walks, hints) = match spawned {
            Ok(_) => (walks, hints),
            // No thread: every walk request goes unanswered and claims walk themselves.
            Err(_) => (mpsc::channel().0, mpsc::channel().1),
        };
        WalkAhead {
            walks,
            hints,
            pid: std::process::id(),
        }
    }

    /// Whether this process started the thread (false in a forked child).
    pub(super) fn is_ours(&self) -> bool {
        self.pid == std::process::id()
    }

    /// Asks for the walk to the end of the batch after `batch`, when a walk is what that claim
    /// would do (a primary-key batch, not a retry).
    pub(super) fn after(&self, batch: &Batch) {
        if batch.strategy != Strategy::PrimaryKey
            || batch.cursor.is_some()
            || batch.attempts > 1
            || batch.max_value == i64::MAX
        {
            return;
        }
        let _ = self.walks.send(Walk {
            migration_id: batch.migration_id,
            table: batch.table_name.clone(),
            column: batch.column_name.clone(),
            start: batch.max_value + 1,
            batch_size: i64::from(batch.batch_size),
        });
    }

    /// The latest walk finished by now, if any; never waits for one still going.
    pub(super) fn latest(&self) -> Option<Hint> {
        self.hints.try_iter().last()
    }
}

fn walk_all(connector: &Connector, timeout: Duration, todo: &Receiver<Walk>, found: &Sender<Hint>) {
    let mut client: Option<postgres::Client> = None;
    for walk in todo {
        // Only the newest request matters: the runner has claimed past the older ones.
        let walk = todo.try_iter().last().unwrap_or(walk);
        match walk_once(connector, timeout, &mut client, &walk) {
            Ok(Some(end)) => {
                if found
                    .send([walk.migration_id, walk.start, walk.batch_size, end])
                    .is_err()
                {
                    return;
                }
            }
            Ok(None) => {}
            // A failed walk costs the next claim its own walk, nothing else; the next walk
            // connects again.
            Err(_) => client = None,
        }
    }
}

fn walk_once(
    connector: &Connector,
    timeout: Duration,
    client: &mut Option<postgres::Client>,
    walk: &Walk,
) -> Result<Option<i64>> {
    let sql = sql::nth_key(&walk.table, &walk.column)?;
    if client.as_ref().is_none_or(postgres::Client::is_closed) {
        let mut fresh = connector.connect()?;
        if connector.prepared_statements() {
            fresh.batch_execute(&format!(
                "SET statement_timeout = {}",
                timeout.as_millis().max(1)
            ))?;
        }
        *client = Some(fresh);
    }
    let client = client.as_mut().expect("connected above");
    // One round trip, nothing prepared: safe behind a transaction pooler too, where the pooler's
    // own query timeout bounds it.
    let row = client.query_typed_opt(
        &sql,
        &[
            (&walk.start, Type::INT8),
            (&i64::MAX, Type::INT8),
            (&walk.batch_size, Type::INT8),
        ],
    )?;
    Ok(row.map(|row| row.get(0)))
}
