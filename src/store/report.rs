//! The status report of one database (`rake schema_fence:status`, status --json, the dashboard):
//! its identity, whether a cutover paused its claims, and each tracking row with whether it is
//! stale, its pace, the time it has left and its last error.

use super::identity::{self, Identity};
use super::migrations::{self, MigrationRow, Status};
use super::{int, Db};
use crate::error::Result;
use crate::topology::Topology;

/// How many of a migration's latest succeeded batches its rate is taken over.
pub const RATE_WINDOW: i64 = 50;

#[derive(Debug, Clone)]
pub struct Report {
    /// `None` before the install (the rows are then empty).
    pub identity: Option<Identity>,
    pub claims_paused: bool,
    pub migrations: Vec<ReportRow>,
}

#[derive(Debug, Clone)]
pub struct ReportRow {
    pub row: MigrationRow,
    /// The database no longer serves the row's `gitlab_schema`: a split left it behind.
    pub stale: bool,
    /// Keys per second over the latest batches, wall time between them included.
    pub rate: Option<f64>,
    /// Seconds left at that rate, counting down between batches; 0 once finished.
    pub eta_seconds: Option<i64>,
    /// The error of the latest failed batch, as the runner recorded it.
    pub last_error: Option<String>,
}

/// One succeeded batch: keys covered, started and finished (seconds since the epoch).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Finished {
    pub keys: i64,
    pub started: Option<f64>,
    pub finished: f64,
}

const CLAIMS_PAUSED: &str =
    "SELECT claims_paused::text FROM public.schema_fence_identity WHERE singleton";

const RECENT_BATCHES: &str = r"
SELECT m.id::text, j.keys::text, j.started::text, j.finished::text
FROM unnest($1::bigint[]) AS m(id)
CROSS JOIN LATERAL (
    SELECT max_value - min_value + 1 AS keys, extract(epoch FROM started_at)::float8 AS started,
           extract(epoch FROM finished_at)::float8 AS finished
    FROM batched_background_migration_jobs
    WHERE batched_background_migration_id = m.id AND status = 3 AND finished_at IS NOT NULL
    ORDER BY id DESC
    LIMIT $2::bigint) j
";

const LAST_ERRORS: &str = r"
SELECT DISTINCT ON (batched_background_migration_id) batched_background_migration_id::text,
       metrics->>'error'
FROM batched_background_migration_jobs
WHERE batched_background_migration_id = ANY($1::bigint[]) AND status = 2
ORDER BY batched_background_migration_id, id DESC
";

/// Reads the report of the database `db` reached; with a topology, rows whose `gitlab_schema` the
/// database's identity no longer serves are marked stale.
pub fn read(db: &mut dyn Db, topology: Option<&Topology>) -> Result<Report> {
    let Some(identity) = identity::read(db)? else {
        return Ok(Report {
            identity: None,
            claims_paused: false,
            migrations: Vec::new(),
        });
    };
    let claims_paused = db
        .query(CLAIMS_PAUSED, &[])?
        .first()
        .and_then(|r| r.first().cloned().flatten())
        .is_some_and(|v| v == "true");
    let allowed = match topology {
        Some(t) => Some(t.allowed_schemas(&identity.serves)?),
        None => None,
    };
    let rows = migrations::list(db)?;
    let stale = |row: &MigrationRow| {
        allowed
            .as_ref()
            .is_some_and(|a| !a.contains(&row.gitlab_schema))
    };
    let moving: Vec<i64> = rows
        .iter()
        .filter(|r| {
            !stale(r)
                && !matches!(
                    r.status,
                    Status::Finished | Status::Finalized | Status::Failed
                )
        })
        .map(|r| r.id)
        .collect();
    let failing: Vec<i64> = rows
        .iter()
        .filter(|r| r.jobs_failed > 0)
        .map(|r| r.id)
        .collect();
    let mut recent = recent_batches(db, &moving)?;
    let mut errors = last_errors(db, &failing)?;
    let migrations = rows
        .into_iter()
        .map(|row| {
            let stale = stale(&row);
            let batches = recent.remove(&row.id);
            let rate = batches.as_deref().and_then(|b| rate(b, &row));
            let status = if stale { None } else { Some(row.status) };
            let eta_seconds = eta(
                status,
                keys_left(&row),
                rate,
                batches.as_deref(),
                row.schedule.now,
            );
            ReportRow {
                last_error: errors.remove(&row.id),
                stale,
                rate,
                eta_seconds,
                row,
            }
        })
        .collect();
    Ok(Report {
        identity: Some(identity),
        claims_paused,
        migrations,
    })
}

fn id_array(ids: &[i64]) -> String {
    let list: Vec<String> = ids.iter().map(i64::to_string).collect();
    format!("{{{}}}", list.join(","))
}

fn recent_batches(
    db: &mut dyn Db,
    ids: &[i64],
) -> Result<std::collections::HashMap<i64, Vec<Finished>>> {
    let mut recent = std::collections::HashMap::<i64, Vec<Finished>>::new();
    if ids.is_empty() {
        return Ok(recent);
    }
    let (ids, window) = (id_array(ids), RATE_WINDOW.to_string());
    for r in db.query(RECENT_BATCHES, &[Some(&ids), Some(&window)])? {
        let float = |i: usize| {
            r.get(i)
                .and_then(|v| v.as_deref())
                .and_then(|v| v.parse().ok())
        };
        let Some(finished) = float(3) else { continue };
        recent.entry(int(&r, 0)?).or_default().push(Finished {
            keys: int(&r, 1)?,
            started: float(2),
            finished,
        });
    }
    Ok(recent)
}

fn last_errors(db: &mut dyn Db, ids: &[i64]) -> Result<std::collections::HashMap<i64, String>> {
    let mut errors = std::collections::HashMap::new();
    if ids.is_empty() {
        return Ok(errors);
    }
    for r in db.query(LAST_ERRORS, &[Some(&id_array(ids))])? {
        if let Some(message) = r.get(1).cloned().flatten() {
            errors.insert(int(&r, 0)?, message);
        }
    }
    Ok(errors)
}

fn keys_left(row: &MigrationRow) -> f64 {
    let (Some(min), Some(max)) = (row.min_value, row.max_value) else {
        return 0.0;
    };
    let total = (max - min + 1) as f64;
    total - (row.progress() * total).round()
}

/// Keys per second between the first and the last finish of the window (the time between
/// batches included: the pace the migration really keeps). One batch alone has no such span: it
/// stands for its interval, the least time a batch takes on the wall (a finalize runs back to
/// back: there its own time).
pub fn rate(batches: &[Finished], row: &MigrationRow) -> Option<f64> {
    let mut batches = batches.to_vec();
    batches.sort_by(|a, b| a.finished.total_cmp(&b.finished));
    let (first, last) = (batches.first()?, batches.last()?);
    let span = last.finished - first.finished;
    if batches.len() > 1 && span > 0.0 {
        let keys: i64 = batches.iter().skip(1).map(|b| b.keys).sum();
        return Some(keys as f64 / span);
    }
    let mut took = last.started.map_or(0.0, |s| last.finished - s);
    if row.status != Status::Finalizing {
        took = took.max(row.interval_seconds as f64);
    }
    (took > 0.0).then(|| last.keys as f64 / took)
}

/// The seconds left at `rate` from the latest finish, less the time since then (never below a
/// second while keys are left); 0 once finished; `None` for a stale row (`status` None) or
/// without a rate.
pub fn eta(
    status: Option<Status>,
    keys_left: f64,
    rate: Option<f64>,
    batches: Option<&[Finished]>,
    clock: f64,
) -> Option<i64> {
    let status = status?;
    if matches!(status, Status::Finished | Status::Finalized) {
        return Some(0);
    }
    let rate = rate.filter(|r| *r > 0.0)?;
    if !matches!(status, Status::Active | Status::Finalizing) {
        return None;
    }
    let latest = batches?
        .iter()
        .map(|b| b.finished)
        .fold(f64::NEG_INFINITY, f64::max);
    let since = clock - latest;
    // Seconds: far inside i64, and `as` saturates a float out of range.
    #[allow(clippy::cast_possible_truncation)]
    let left = (keys_left / rate - since).ceil() as i64;
    Some(left.max(1))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::waiting::Schedule;

    fn row(status: Status, interval_seconds: i64) -> MigrationRow {
        MigrationRow {
            id: 1,
            job_class_name: "Backfill".into(),
            table_name: "ci_builds".into(),
            column_name: "id".into(),
            job_arguments: "[]".into(),
            gitlab_schema: "gitlab_ci".into(),
            status,
            min_value: Some(1),
            max_value: Some(1000),
            min_cursor: None,
            max_cursor: None,
            batch_class_name: "PrimaryKeyBatchingStrategy".into(),
            not_runnable: None,
            batch_size: 100,
            sub_batch_size: 10,
            interval_seconds,
            pause_ms: 0,
            jobs_succeeded: 0,
            jobs_failed: 0,
            keys_done: 0,
            created_at: String::new(),
            schedule: Schedule::default(),
        }
    }

    fn batch(keys: i64, started: f64, finished: f64) -> Finished {
        Finished {
            keys,
            started: Some(started),
            finished,
        }
    }

    #[test]
    fn the_rate_spans_the_wall_time_between_batches_not_their_own_durations() {
        // Three batches of 100 keys, each taking 0.1 s, finishing 10 s apart: 10 keys/s.
        let batches = [
            batch(100, 99.9, 100.0),
            batch(100, 109.9, 110.0),
            batch(100, 119.9, 120.0),
        ];
        assert_eq!(rate(&batches, &row(Status::Active, 10)), Some(10.0));
    }

    #[test]
    fn one_batch_stands_for_its_interval_except_while_finalizing() {
        let batches = [batch(100, 99.0, 100.0)];
        assert_eq!(
            rate(&batches, &row(Status::Active, 120)),
            Some(100.0 / 120.0)
        );
        assert_eq!(rate(&batches, &row(Status::Finalizing, 120)), Some(100.0));
    }

    #[test]
    fn the_time_left_counts_down_between_batches_and_is_zero_once_finished() {
        let batches = [batch(100, 99.9, 100.0), batch(100, 109.9, 110.0)];
        let rate = Some(10.0);
        let at = |clock| eta(Some(Status::Active), 800.0, rate, Some(&batches), clock);
        assert_eq!(at(110.0), Some(80));
        assert_eq!(at(130.0), Some(60));
        assert_eq!(at(10_000.0), Some(1));
        assert_eq!(eta(Some(Status::Finished), 0.0, None, None, 0.0), Some(0));
        assert_eq!(eta(None, 800.0, rate, Some(&batches), 110.0), None);
        assert_eq!(
            eta(Some(Status::Paused), 800.0, rate, Some(&batches), 110.0),
            None
        );
    }
}
