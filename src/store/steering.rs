//! The operator's status changes (pause, resume, `retry_failed`, finalize), each one conditional
//! statement on the status the operator saw: a runner that wrote another status in between
//! (finished, failed) is never overwritten, and the caller learns that nothing changed.

use super::{int, Db, Status};
use crate::error::{Error, Result};

/// Moves migration `id` from `from` (the status the operator read) to `to`, when the transition
/// table allows it; returns whether the row was still `from` and so changed.
pub fn change_status(db: &mut dyn Db, id: i64, from: Status, to: Status) -> Result<bool> {
    if !to.changed_from().contains(&from) {
        return Err(Error::InvalidArgument {
            what: "status change".into(),
            problem: format!(
                "a migration cannot be moved from {} to {} (only from {})",
                from.name(),
                to.name(),
                names(to.changed_from())
            ),
        });
    }
    let (id, from, to) = (
        id.to_string(),
        from.code().to_string(),
        to.code().to_string(),
    );
    let rows = db.query(
        "UPDATE batched_background_migrations SET status = $3::smallint, updated_at = now() \
         WHERE id = $1::bigint AND status = $2::smallint RETURNING id",
        &[Some(&id), Some(&from), Some(&to)],
    )?;
    Ok(!rows.is_empty())
}

/// The statuses from which failed batches may be retried.
pub const RETRYABLE: [Status; 4] = [
    Status::Active,
    Status::Paused,
    Status::Failed,
    Status::Finalizing,
];

/// What [`retry_failed`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Retried {
    /// The migration's status afterwards (a failed one is active again; others keep theirs).
    pub status: Status,
    /// Failed batches put back to pending, attempts and lease cleared.
    pub batches: i64,
}

/// Puts the failed batches of migration `id` back to pending and a failed migration back to
/// active, in one statement that does nothing (`None`) unless the migration is still `from`, the
/// status the operator read (one of [`RETRYABLE`]): a migration a runner finished or failed
/// meanwhile is left as the runner wrote it.
pub fn retry_failed(db: &mut dyn Db, id: i64, from: Status) -> Result<Option<Retried>> {
    if !RETRYABLE.contains(&from) {
        return Err(Error::InvalidArgument {
            what: "retry of failed batches".into(),
            problem: format!(
                "a {} migration has no batches to retry (only {})",
                from.name(),
                names(&RETRYABLE)
            ),
        });
    }
    let from = from.code().to_string();
    let id = id.to_string();
    let rows = db.query(
        "WITH m AS ( \
           UPDATE batched_background_migrations \
           SET status = CASE WHEN status = 4 THEN 1 ELSE status END, updated_at = now() \
           WHERE id = $1::bigint AND status = $2::smallint RETURNING status), \
         jobs AS ( \
           UPDATE batched_background_migration_jobs \
           SET status = 0, attempts = 0, lease_owner = NULL, lease_expires_at = NULL, \
               started_at = NULL, finished_at = NULL, updated_at = now() \
           WHERE batched_background_migration_id = $1::bigint AND status = 2 \
             AND EXISTS (SELECT FROM m) RETURNING 1) \
         SELECT (SELECT status FROM m)::text, (SELECT count(*) FROM jobs)::text",
        &[Some(&id), Some(&from)],
    )?;
    let row = rows
        .first()
        .ok_or_else(|| Error::unexpected("retry_failed returned no row"))?;
    if row.first().and_then(|v| v.as_deref()).is_none() {
        return Ok(None);
    }
    let code = int(row, 0)?;
    Ok(Some(Retried {
        status: Status::from_code(code)
            .unwrap_or(Status::Unknown(i16::try_from(code).unwrap_or(i16::MIN))),
        batches: int(row, 1)?,
    }))
}

fn names(statuses: &[Status]) -> String {
    if statuses.is_empty() {
        return "no status".into();
    }
    statuses
        .iter()
        .map(|s| s.name())
        .collect::<Vec<_>>()
        .join(" or ")
}
