//! One batch: claiming it (a retry or the next key range), completing it, failing it.

use postgres::{GenericClient, Transaction};

use super::cursor::{self, CursorRange};
use super::cursor_split;
use super::reach::Reach;
use super::statements::Statements;
use super::{sql, Limits, RunnerOptions};
use crate::batching::Strategy;
use crate::error::Result;

/// A claimed batch: a job row leased to one runner, with what running it needs.
#[derive(Debug, Clone, PartialEq)]
pub struct Batch {
    pub job_id: i64,
    pub migration_id: i64,
    pub job_class_name: String,
    pub table_name: String,
    pub column_name: String,
    /// JSON text of the job arguments array.
    pub job_arguments: String,
    pub gitlab_schema: String,
    pub min_value: i64,
    pub max_value: i64,
    pub batch_size: i32,
    pub sub_batch_size: i32,
    pub pause_ms: i32,
    pub attempts: i16,
    pub epoch: i64,
    /// How keys are walked: consecutive keys, or distinct values (loose index scan).
    pub strategy: Strategy,
    /// The physical database the batch was claimed on: its job must run there.
    pub reach: Reach,
    /// A cursor-batched migration's key range (then `min_value`/`max_value` are 0); boxed, so a
    /// claim of an id-batched migration stays small.
    pub cursor: Option<Box<CursorRange>>,
    /// The claim's walk found every key from `min_value` to `max_value` (none missing): the
    /// sub-batches are then consecutive runs of `sub_batch_size` keys, with no second walk.
    /// False for a retried job, whose keys were not counted.
    pub dense: bool,
}

impl Batch {
    /// The sub-batches' bounds when they need no walk (a dense primary-key range, or a batch no
    /// larger than one sub-batch); `None` when only a walk of the keys can tell them.
    pub fn consecutive_sub_batches(&self) -> Option<Vec<(i64, i64)>> {
        if self.cursor.is_some() {
            return None;
        }
        if self.sub_batch_size >= self.batch_size {
            // At most batch_size keys: the batch is its own single sub-batch.
            return Some(vec![(self.min_value, self.max_value)]);
        }
        if !self.dense || self.strategy != Strategy::PrimaryKey {
            return None;
        }
        let step = i64::from(self.sub_batch_size.max(1));
        let starts: Vec<i64> = (self.min_value..=self.max_value)
            .step_by(usize::try_from(step).unwrap_or(usize::MAX))
            .collect();
        Some(super::sub_batches::bounds(&starts, self.max_value))
    }
}

/// What completing or failing a batch led to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Completion {
    /// Recorded; the migration goes on.
    Recorded,
    /// Recorded, and the migration has nothing left: finished.
    MigrationFinished,
    /// Recorded, and the migration failed (attempts used up, or the failure ratio rule).
    MigrationFailed,
    /// The lease had expired and another worker took the batch over; nothing was recorded.
    LeaseLost,
}

const FINISHED: i16 = 3;
const FAILED: i16 = 4;

/// Who claims, and how: the allowed schemas and epoch of the identity the claim read, the lease
/// owner, and whether the claim finalizes (a hold does not stop it).
pub(super) struct Claimant<'a> {
    pub allowed: &'a [String],
    pub owner: &'a str,
    pub epoch: i64,
    pub finalizing: bool,
    /// The migration came from this claim's fetch: it must still be due once locked.
    pub fetched: bool,
}

/// Claims the next batch of migration `id` in the caller's transaction, or `None` when the
/// migration is held by another claim or has nothing to hand out now.
pub(super) fn claim_batch(
    tx: &mut Transaction<'_>,
    st: &mut Statements,
    id: i64,
    claimant: &Claimant<'_>,
    options: &RunnerOptions,
) -> Result<Option<Batch>> {
    let Claimant {
        allowed,
        owner,
        epoch,
        finalizing,
        fetched,
    } = *claimant;
    if st.query_opt(tx, sql::LOCK_CANDIDATE, &[&id])?.is_none() {
        return Ok(None);
    }
    let Some(m) = st.query_opt(
        tx,
        sql::LOCK_MIGRATION,
        &[
            &id,
            &allowed,
            &options.max_attempts,
            &finalizing,
            &options.limits().stuck_after_secs,
            &fetched,
        ],
    )?
    else {
        return Ok(None);
    };
    // The claim's condition excludes rows without a key range or with another strategy; read
    // them fallibly all the same, so a row changed under us is an error, never a panic.
    let strategy =
        Strategy::from_name(&m.try_get::<_, String>(19)?).unwrap_or(Strategy::PrimaryKey);
    let lease = options.lease.as_secs_f64();
    let mut batch = Batch {
        job_id: 0,
        migration_id: m.get(0),
        job_class_name: m.get(1),
        table_name: m.get(2),
        column_name: m.get(3),
        job_arguments: m.get(4),
        gitlab_schema: m.get(5),
        min_value: 0,
        max_value: 0,
        batch_size: m.get(8),
        sub_batch_size: m.get(9),
        pause_ms: m.get(10),
        attempts: 1,
        epoch,
        strategy,
        reach: Reach::default(),
        cursor: None,
        dense: false,
    };
    let key_range: (Option<i64>, Option<i64>) = (m.try_get(6)?, m.try_get(7)?);
    let (Some(migration_min), Some(migration_max)) = key_range else {
        let retry = m
            .get::<_, Option<i64>>(11)
            .map(|job| (job, m.get::<_, i16>(17)));
        return cursor::claim(tx, st, batch, retry, claimant, options);
    };

    if let Some(job_id) = m.get::<_, Option<i64>>(11) {
        batch.job_id = job_id;
        batch.min_value = m.try_get(12)?;
        batch.max_value = m.try_get(13)?;
        batch.batch_size = m.get(14);
        batch.sub_batch_size = m.get(15);
        batch.pause_ms = m.get(16);
        batch.attempts = m.get::<_, i16>(17) + 1;
        st.execute(tx, sql::TAKE_JOB, &[&batch.job_id, &owner, &lease, &epoch])?;
        return Ok(Some(batch));
    }

    let last: Option<i64> = m.get(18);
    let start = last.map_or(migration_min, |l| l.saturating_add(1));
    let limit = i64::from(batch.batch_size);
    let range = if start > migration_max {
        None
    } else {
        next_range(tx, st, &batch, (start, migration_max), limit)?
    };
    let Some((end, dense)) = range else {
        finish_if_done(tx, st, id, options.limits())?;
        return Ok(None);
    };
    batch.min_value = start;
    batch.max_value = end;
    batch.dense = dense;
    let row = st.query_one(
        tx,
        sql::INSERT_JOB,
        &[
            &id,
            &batch.min_value,
            &batch.max_value,
            &batch.batch_size,
            &batch.sub_batch_size,
            &batch.pause_ms,
            &owner,
            &lease,
            &epoch,
        ],
    )?;
    batch.job_id = row.get(0);
    Ok(Some(batch))
}

/// The end of the next batch from `start` and whether it holds every key up to there, or `None`
/// when no key is left. The range starts where the last one ended, so keys added in a gap are
/// still covered; it ends at the batch_size-th key, or at the migration's end when fewer remain.
fn next_range(
    tx: &mut Transaction<'_>,
    st: &mut Statements,
    batch: &Batch,
    (start, migration_max): (i64, i64),
    limit: i64,
) -> Result<Option<(i64, bool)>> {
    let (table, column) = (&batch.table_name, &batch.column_name);
    if batch.strategy == Strategy::PrimaryKey {
        let nth = sql::nth_key(table, column)?;
        if let Some(row) = st.query_opt(tx, &nth, &[&start, &migration_max, &limit])? {
            let end: i64 = row.get(0);
            // Unique keys from `start`: the limit-th is start + limit - 1 only if none is missing.
            return Ok(Some((end, end.checked_sub(start) == Some(limit - 1))));
        }
        let first = sql::first_key(table, column)?;
        let row = st.query_one(tx, &first, &[&start, &migration_max])?;
        return Ok(row.get::<_, Option<i64>>(0).map(|_| (migration_max, false)));
    }
    let key_range = sql::key_range(table, column, batch.strategy)?;
    let row = st.query_one(tx, &key_range, &[&start, &migration_max, &limit])?;
    let count: i64 = row.get(2);
    Ok(row.get::<_, Option<i64>>(1).map(|last_key| {
        let end = if count < limit {
            migration_max
        } else {
            last_key
        };
        (end, false)
    }))
}

/// With no key range left: finished when every job succeeded, failed when some used up their
/// attempts, untouched while jobs are still open.
pub(super) fn finish_if_done(
    tx: &mut impl GenericClient,
    st: &mut Statements,
    id: i64,
    limits: Limits,
) -> Result<Completion> {
    let row = st.query_one(
        tx,
        sql::UNFINISHED_JOBS,
        &[&id, &limits.max_attempts, &limits.stuck_after_secs],
    )?;
    let (open, failed): (i64, i64) = (row.get(0), row.get(1));
    if open > 0 {
        return Ok(Completion::Recorded);
    }
    if failed > 0 {
        st.execute(
            tx,
            sql::FAIL_ABANDONED_JOBS,
            &[&id, &limits.max_attempts, &limits.stuck_after_secs],
        )?;
    }
    let status = if failed > 0 { FAILED } else { FINISHED };
    if st.execute(tx, sql::SET_MIGRATION_STATUS, &[&id, &status])? == 0 {
        return Ok(Completion::Recorded);
    }
    Ok(if failed > 0 {
        Completion::MigrationFailed
    } else {
        Completion::MigrationFinished
    })
}

fn migration_exhausted(
    tx: &mut Transaction<'_>,
    st: &mut Statements,
    migration_id: i64,
) -> Result<bool> {
    let row = st.query_one(tx, sql::MIGRATION_EXHAUSTED, &[&migration_id])?;
    // A cursor-batched migration has no max_value: its next claim finds the end instead.
    let (max, last): (Option<i64>, Option<i64>) = (row.get(0), row.get(1));
    Ok(max.zip(last).is_some_and(|(max, last)| last >= max))
}

/// What a completion tells the batch optimizer: the migration's batch size, its
/// `max_batch_size`, and the efficiencies of its newest succeeded jobs, newest first.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Recent {
    pub batch_size: i32,
    pub max_batch_size: Option<i32>,
    pub efficiencies: Vec<f64>,
}

/// The row of `COMPLETE_JOB`: whether the ranges reach the end, and the optimizer's input.
fn completed(done: &postgres::Row) -> (bool, Option<Recent>) {
    let efficiencies: Option<Vec<f64>> = done.get(3);
    let recent = efficiencies.map(|efficiencies| Recent {
        batch_size: done.get(1),
        max_batch_size: done.get(2),
        efficiencies,
    });
    (done.get::<_, Option<bool>>(0) == Some(true), recent)
}

/// Completing in the caller's transaction (behind a pooler every statement is in one).
/// `recent_jobs`: how many jobs' efficiencies the optimizer reads (0 without it).
pub(super) fn complete_in(
    tx: &mut impl GenericClient,
    st: &mut Statements,
    batch: &Batch,
    (owner, metrics_json, recent_jobs): (&str, &str, i64),
    max_attempts: Limits,
) -> Result<(Completion, Option<Recent>)> {
    let Some(done) = st.query_opt(
        tx,
        sql::COMPLETE_JOB,
        &[&batch.job_id, &owner, &metrics_json, &recent_jobs],
    )?
    else {
        return Ok((Completion::LeaseLost, None));
    };
    let (reached_end, recent) = completed(&done);
    if reached_end || cursor::exhausted(tx, st, batch)? {
        st.query_one(tx, sql::LOCK_MIGRATION_ROW, &[&batch.migration_id])?;
        return Ok((
            finish_if_done(tx, st, batch.migration_id, max_attempts)?,
            None,
        ));
    }
    Ok((Completion::Recorded, recent))
}

/// Completing is one statement, atomic on its own; only finishing the migration takes a
/// transaction.
pub(super) fn complete(
    client: &mut postgres::Client,
    st: &mut Statements,
    batch: &Batch,
    (owner, metrics_json, recent_jobs): (&str, &str, i64),
    limits: Limits,
) -> Result<(Completion, Option<Recent>)> {
    let Some(done) = st.query_opt(
        client,
        sql::COMPLETE_JOB,
        &[&batch.job_id, &owner, &metrics_json, &recent_jobs],
    )?
    else {
        return Ok((Completion::LeaseLost, None));
    };
    let (reached_end, recent) = completed(&done);
    if reached_end || cursor::exhausted(client, st, batch)? {
        let mut tx = client.transaction()?;
        st.query_one(&mut tx, sql::LOCK_MIGRATION_ROW, &[&batch.migration_id])?;
        let finished = finish_if_done(&mut tx, st, batch.migration_id, limits)?;
        tx.commit()?;
        return Ok((finished, None));
    }
    Ok((Completion::Recorded, recent))
}

pub(super) fn fail(
    tx: &mut Transaction<'_>,
    st: &mut Statements,
    batch: &Batch,
    owner: &str,
    error: &str,
    timed_out: bool,
    limits: Limits,
) -> Result<Completion> {
    let keys = batch.max_value - batch.min_value;
    // GitLab splits only a batch larger than its sub-batch: a smaller one cannot run in less.
    let splits = timed_out && batch.batch_size > batch.sub_batch_size && batch.batch_size > 1;
    if let (true, Some(cursor)) = (splits, batch.cursor.as_deref()) {
        return cursor_split::split(tx, st, batch, cursor, owner);
    }
    if splits && keys > 0 {
        let half = (batch.batch_size / 2).max(1);
        let mid = batch.min_value + keys / 2;
        let Some(row) = st.query_opt(tx, sql::SHRINK_JOB, &[&batch.job_id, &owner, &mid, &half])?
        else {
            return Ok(Completion::LeaseLost);
        };
        let (migration, sub, pause): (i64, i32, i32) = (row.get(0), row.get(1), row.get(2));
        let rest = batch.batch_size - half;
        st.execute(
            tx,
            sql::INSERT_PENDING_JOB,
            &[
                &migration,
                &(mid + 1),
                &batch.max_value,
                &rest.max(1),
                &sub.min(rest.max(1)),
                &pause,
            ],
        )?;
        return Ok(Completion::Recorded);
    }
    let message: String = error.chars().take(2000).collect();
    if st
        .query_opt(tx, sql::FAIL_JOB, &[&batch.job_id, &owner, &message])?
        .is_none()
    {
        return Ok(Completion::LeaseLost);
    }
    let ratio = st.query_one(tx, sql::FAILURE_RATIO, &[&batch.migration_id])?;
    let (total, failed): (i64, i64) = (ratio.get(0), ratio.get(1));
    if total >= 50 && failed * 2 > total {
        let failed = st.execute(
            tx,
            sql::SET_MIGRATION_STATUS,
            &[&batch.migration_id, &FAILED],
        )?;
        if failed > 0 {
            return Ok(Completion::MigrationFailed);
        }
    }
    if batch.attempts >= limits.max_attempts
        && (migration_exhausted(tx, st, batch.migration_id)? || cursor::exhausted(tx, st, batch)?)
    {
        return finish_if_done(tx, st, batch.migration_id, limits);
    }
    Ok(Completion::Recorded)
}
