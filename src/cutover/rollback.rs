//! The rollback after the promotion (docs/architecture.md section 10): the split is undone without losing a
//! write the new database took or redoing a batch it finished. Each step is logged under
//! `<cutover> rollback` and a rerun resumes after the last finished one, as `execute` does.

use std::time::{Duration, Instant};

use postgres::Client;

use super::split::Split;
use super::tables::{self, tables_of};
use super::{fence, lock_writes, merge, reverse, sequences, Cutover};
use crate::error::{CutoverError, Error, Result};
use crate::store::identity;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RollbackStep {
    Verify,
    Pause,
    Drain,
    Fence,
    CatchUp,
    Merge,
    Sequences,
    Stamp,
    Unlock,
    DropReplication,
    Resume,
}

impl RollbackStep {
    pub const ALL: [RollbackStep; 11] = [
        RollbackStep::Verify,
        RollbackStep::Pause,
        RollbackStep::Drain,
        RollbackStep::Fence,
        RollbackStep::CatchUp,
        RollbackStep::Merge,
        RollbackStep::Sequences,
        RollbackStep::Stamp,
        RollbackStep::Unlock,
        RollbackStep::DropReplication,
        RollbackStep::Resume,
    ];

    pub fn name(self) -> &'static str {
        match self {
            RollbackStep::Verify => "verify",
            RollbackStep::Pause => "pause",
            RollbackStep::Drain => "drain",
            RollbackStep::Fence => "fence",
            RollbackStep::CatchUp => "catch_up",
            RollbackStep::Merge => "merge",
            RollbackStep::Sequences => "sequences",
            RollbackStep::Stamp => "stamp",
            RollbackStep::Unlock => "unlock",
            RollbackStep::DropReplication => "drop_replication",
            RollbackStep::Resume => "resume",
        }
    }

    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.name() == name)
    }

    pub fn database(self, cutover: &Cutover) -> String {
        let (source, target) = (&cutover.config().source, &cutover.config().target);
        match self {
            RollbackStep::Fence => format!("{target} (target)"),
            RollbackStep::CatchUp | RollbackStep::Merge | RollbackStep::Sequences => {
                format!("{source} (source)")
            }
            _ => format!("{source} and {target}"),
        }
    }
}

/// `epoch_before`: the source's epoch when the rollback began; the stamp gives one more.
pub(super) fn run(
    cutover: &Cutover,
    step: RollbackStep,
    split: &Split,
    epoch_before: Option<i64>,
) -> Result<String> {
    let config = cutover.config();
    let (source_name, target_name) = (config.source.as_str(), config.target.as_str());
    let moved = split.moving_schemas(cutover.topology())?;
    match step {
        RollbackStep::Verify => verify(cutover, &moved),
        RollbackStep::Pause | RollbackStep::Resume => {
            let paused = step == RollbackStep::Pause;
            for db in [&mut cutover.source()?, &mut cutover.target()?] {
                identity::set_claims_paused(db, paused)?;
            }
            Ok(format!(
                "claims {} on both",
                if paused { "paused" } else { "allowed" }
            ))
        }
        RollbackStep::Drain => {
            for db in [&mut cutover.source()?, &mut cutover.target()?] {
                super::steps::drain(db, config.drain_timeout, cutover.interrupt_handle())?;
            }
            Ok("no live batch lease on either side".into())
        }
        RollbackStep::Fence => {
            let mut target = cutover.target()?;
            let mut tx = target.transaction()?;
            let relations = tables_of(&mut tx, cutover.dictionary(), &moved)?;
            fence::lay(
                &mut tx,
                &relations,
                source_name,
                &format!("{} rollback", cutover.name()),
            )?;
            tx.commit()?;
            Ok(format!(
                "fenced on {target_name}: {}",
                tables::describe(&relations)
            ))
        }
        RollbackStep::CatchUp => catch_up(cutover, config.catch_up_timeout),
        RollbackStep::Merge => {
            let mut source = cutover.source()?;
            let mut target = cutover.target()?;
            let mut tx = source.transaction()?;
            let report = merge::merge(&mut tx, &mut target, &moved)?;
            tx.commit()?;
            Ok(format!(
                "{} migrations brought up to the target's progress, {} created, {} batches copied",
                report.matched, report.created, report.jobs
            ))
        }
        RollbackStep::Sequences => {
            let mut target = cutover.target()?;
            let relations = tables_of(&mut target, cutover.dictionary(), &moved)?;
            let moved_sequences =
                sequences::move_past(&mut cutover.source()?, &mut target, &relations)?;
            Ok(format!(
                "{} sequences moved past the target's values",
                moved_sequences.len()
            ))
        }
        RollbackStep::Stamp => stamp(cutover, split, epoch_before),
        RollbackStep::Unlock => {
            let mut source = cutover.source()?;
            let mut tx = source.transaction()?;
            let unlocked = lock_writes::unlock_writes(&mut tx)?;
            // A cutover stopped between its promotion and its lock_writes step left the fence on
            // the source (found by the model check, docs/model.md): lift it with the locks.
            fence::lift(&mut tx)?;
            // Whatever the source still must not take (an earlier split's tables) is locked again.
            let relocked = lock_writes::lock_writes(
                &mut tx,
                cutover.dictionary(),
                cutover.topology(),
                source_name,
                &split.before,
            )?;
            tx.commit()?;
            Ok(format!(
                "{} tables unlocked on {source_name} ({} still locked)",
                unlocked.len(),
                relocked.len()
            ))
        }
        RollbackStep::DropReplication => reverse::tear_down(
            &mut cutover.source()?,
            &mut cutover.target()?,
            &cutover.name(),
        ),
    }
}

/// The rollback's requirements, checked before it changes anything: the reverse replication
/// exists, and every moved table has the same columns on both sides (logical replication carries
/// no DDL, so a migration run on one side only would break the apply or lose columns).
fn verify(cutover: &Cutover, moved: &[String]) -> Result<String> {
    let mut source = cutover.source()?;
    let mut target = cutover.target()?;
    if !reverse::is_set_up(&mut source, &cutover.name())? {
        return Err(Error::Cutover(CutoverError::CutoverNotReversible {
            cutover: cutover.name(),
            reason:
                "its reverse replication is not on the source (it was dropped, or never set up)"
                    .into(),
        }));
    }
    let relations = tables_of(&mut target, cutover.dictionary(), moved)?;
    let columns = |db: &mut Client, table: &str| -> Result<Vec<(String, String)>> {
        Ok(db
            .query(
                "SELECT attname::text, format_type(atttypid, atttypmod) FROM pg_attribute \
                 WHERE attrelid = to_regclass($1) AND attnum > 0 AND NOT attisdropped ORDER BY attname",
                &[&table],
            )?
            .iter()
            .map(|r| (r.get(0), r.get(1)))
            .collect())
    };
    let differing: Vec<String> = relations
        .iter()
        .filter_map(|r| {
            let (s, t) = (columns(&mut source, &r.name), columns(&mut target, &r.name));
            match (s, t) {
                (Ok(s), Ok(t)) if s == t => None,
                _ => Some(r.name.clone()),
            }
        })
        .collect();
    if !differing.is_empty() {
        return Err(Error::Cutover(CutoverError::CutoverState {
            message: format!(
                "the rollback of {} is refused: these moved tables differ between the two sides \
                 (a migration ran on one side only; logical replication carries no DDL): {}. Make \
                 them the same on both sides, then run the rollback again",
                cutover.name(),
                differing.join(", ")
            ),
        }));
    }
    Ok(format!(
        "reverse replication in place; {} moved tables have the same columns on both sides",
        relations.len()
    ))
}

/// Waits until the source has applied everything the target committed: a marker written on the
/// target after its fence, seen on the source.
fn catch_up(cutover: &Cutover, timeout: Duration) -> Result<String> {
    let mut target = cutover.target()?;
    let mut source = cutover.source()?;
    let name = cutover.name();
    let token = reverse::mark(&mut target, &name)?;
    let deadline = Instant::now() + timeout;
    loop {
        if reverse::applied(&mut source, &name, &token)? {
            return Ok("the source applied everything the target committed".into());
        }
        if Instant::now() >= deadline {
            return Err(Error::Cutover(CutoverError::CutoverTimeout {
                step: format!("rollback {}", RollbackStep::CatchUp.name()),
                seconds: timeout.as_secs_f64(),
                waiting_for: "the source to apply the target's writes through the reverse \
                              replication (see pg_stat_subscription on the source)"
                    .into(),
            }));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The source serves again what it served before the split; the target is retired.
fn stamp(cutover: &Cutover, split: &Split, epoch_before: Option<i64>) -> Result<String> {
    let config = cutover.config();
    let mut source = cutover.source()?;
    let mut target = cutover.target()?;
    let epoch = identity::next_epoch(&mut source, &mut target, epoch_before)?;
    identity::stamp(&mut target, &config.target, &[], epoch)?;
    identity::stamp(&mut source, &config.source, &split.before, epoch)?;
    Ok(format!(
        "{} is ({0}, [{}], {epoch}); {} is retired (serves nothing, {epoch})",
        config.source,
        split.before.join(", "),
        config.target
    ))
}
