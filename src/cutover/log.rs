//! `schema_fence_cutover_log` on the source: one row per step run, finished or not.

use postgres::GenericClient;

use super::Step;
use crate::error::Result;

const CREATE: &str = r#"
CREATE TABLE IF NOT EXISTS schema_fence_cutover_log (
    id bigserial PRIMARY KEY,
    cutover text NOT NULL,
    step text NOT NULL,
    database text NOT NULL,
    started_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    finished_at timestamptz,
    detail text
);
-- What the source served when the cutover began (the split is computed from it on every run)
-- and the target it was begun against (a rerun against another one is refused).
ALTER TABLE schema_fence_cutover_log ADD COLUMN IF NOT EXISTS source_serves text[];
ALTER TABLE schema_fence_cutover_log ADD COLUMN IF NOT EXISTS target text;
ALTER TABLE schema_fence_cutover_log ADD COLUMN IF NOT EXISTS reversible boolean;
-- The source's identity epoch when the cutover (or its rollback) began: the stamp gives one more,
-- however often it is run.
ALTER TABLE schema_fence_cutover_log ADD COLUMN IF NOT EXISTS epoch bigint;
"#;

pub(super) fn ensure_table(db: &mut impl GenericClient) -> Result<()> {
    db.batch_execute(CREATE)?;
    Ok(())
}

fn exists(db: &mut impl GenericClient) -> Result<bool> {
    let row = db.query_one(
        "SELECT to_regclass('schema_fence_cutover_log') IS NOT NULL",
        &[],
    )?;
    Ok(row.get(0))
}

pub(super) fn finished_steps(db: &mut impl GenericClient, cutover: &str) -> Result<Vec<Step>> {
    Ok(finished_names(db, cutover)?
        .iter()
        .filter_map(|n| Step::from_name(n))
        .collect())
}

pub(super) fn started_steps(db: &mut impl GenericClient, cutover: &str) -> Result<Vec<Step>> {
    Ok(names_where(db, cutover, "true")?
        .iter()
        .filter_map(|n| Step::from_name(n))
        .collect())
}

/// The names of the steps of `cutover` (a cutover or its rollback) that finished.
pub(super) fn finished_names(db: &mut impl GenericClient, cutover: &str) -> Result<Vec<String>> {
    names_where(db, cutover, "finished_at IS NOT NULL")
}

fn names_where(
    db: &mut impl GenericClient,
    cutover: &str,
    condition: &'static str,
) -> Result<Vec<String>> {
    if !exists(db)? {
        return Ok(vec![]);
    }
    let rows = db.query(
        &format!(
            "SELECT DISTINCT step FROM schema_fence_cutover_log WHERE cutover = $1 AND {condition}"
        ),
        &[&cutover],
    )?;
    Ok(rows.iter().map(|r| r.get::<_, String>(0)).collect())
}

pub(super) fn start(
    db: &mut impl GenericClient,
    cutover: &str,
    step: &str,
    database: &str,
    begun: &Begun,
) -> Result<i64> {
    let row = db.query_one(
        "INSERT INTO schema_fence_cutover_log \
             (cutover, step, database, source_serves, target, reversible, epoch) \
         VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id",
        &[
            &cutover,
            &step,
            &database,
            &begun.source_serves,
            &begun.target,
            &begun.reversible,
            &begun.epoch,
        ],
    )?;
    Ok(row.get(0))
}

/// What the first step of a cutover recorded: the source's serves then, and the target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Begun {
    pub source_serves: Vec<String>,
    pub target: String,
    /// Whether the cutover set up reverse replication (a lossless rollback after the promotion).
    pub reversible: bool,
    /// The source's identity epoch when it began (None in logs written before it was recorded).
    pub epoch: Option<i64>,
}

/// The first logged step's record of the cutover, if it has begun.
pub(super) fn begun(db: &mut impl GenericClient, cutover: &str) -> Result<Option<Begun>> {
    if !exists(db)? {
        return Ok(None);
    }
    let row = db.query_opt(
        "SELECT source_serves, target, COALESCE(reversible, false), epoch FROM schema_fence_cutover_log \
         WHERE cutover = $1 AND source_serves IS NOT NULL ORDER BY id LIMIT 1",
        &[&cutover],
    )?;
    Ok(row.map(|r| Begun {
        source_serves: r.get(0),
        target: r.get(1),
        reversible: r.get(2),
        epoch: r.get(3),
    }))
}

/// Seconds from the start of `first` to the end of `last`, once both are logged.
pub(super) fn window(
    db: &mut impl GenericClient,
    cutover: &str,
    first: Step,
    last: Step,
) -> Result<Option<f64>> {
    if !exists(db)? {
        return Ok(None);
    }
    let row = db.query_one(
        "SELECT EXTRACT(EPOCH FROM max(finished_at) FILTER (WHERE step = $3) \
                              - min(started_at) FILTER (WHERE step = $2))::float8 \
         FROM schema_fence_cutover_log WHERE cutover = $1",
        &[&cutover, &first.name(), &last.name()],
    )?;
    Ok(row.get(0))
}

pub(super) fn finish(db: &mut impl GenericClient, id: i64, detail: &str) -> Result<()> {
    db.execute(
        "UPDATE schema_fence_cutover_log SET finished_at = clock_timestamp(), detail = $2 WHERE id = $1",
        &[&id, &detail],
    )?;
    Ok(())
}

pub(super) fn forget(db: &mut impl GenericClient, cutover: &str) -> Result<()> {
    db.execute(
        "DELETE FROM schema_fence_cutover_log WHERE cutover = $1",
        &[&cutover],
    )?;
    Ok(())
}

/// Closes a cutover and its rollback in the log once the rollback is complete, so that a new
/// `execute` splits again: their rows are kept under `<name> (rolled back, log <id>)`.
pub(super) fn archive(db: &mut impl GenericClient, names: &[&str]) -> Result<()> {
    let names: Vec<String> = names.iter().map(std::string::ToString::to_string).collect();
    db.execute(
        "UPDATE schema_fence_cutover_log SET cutover = cutover || ' (rolled back, log ' || \
         (SELECT max(id) FROM schema_fence_cutover_log) || ')' WHERE cutover = ANY($1)",
        &[&names],
    )?;
    Ok(())
}

/// One row of the cutover log, for status pages.
#[derive(Debug, Clone, PartialEq)]
pub struct LogEntry {
    pub cutover: String,
    pub step: String,
    pub database: String,
    /// RFC 3339.
    pub started_at: String,
    pub finished_at: Option<String>,
    pub detail: Option<String>,
}

/// The latest `limit` rows of the log of the database at `db`, newest first (none without a log).
pub fn history(db: &mut impl GenericClient, limit: i64) -> Result<Vec<LogEntry>> {
    if !exists(db)? {
        return Ok(vec![]);
    }
    let rows = db.query(
        "SELECT cutover, step, database, to_char(started_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"'), \
                to_char(finished_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"'), detail \
         FROM schema_fence_cutover_log ORDER BY id DESC LIMIT $1",
        &[&limit],
    )?;
    Ok(rows
        .iter()
        .map(|r| LogEntry {
            cutover: r.get(0),
            step: r.get(1),
            database: r.get(2),
            started_at: r.get(3),
            finished_at: r.get(4),
            detail: r.get(5),
        })
        .collect())
}
