//! The nine steps, in order (docs/architecture.md section 10).

use std::time::{Duration, Instant};

use postgres::Client;

use super::split::Split;
use super::tables::{self, tables_of};
use super::{fence, lock_writes, reverse, verify, CutoverConfig, Promotion};
use crate::error::{CutoverError, Error, Result};
use crate::interrupt::Interrupt;
use crate::store::identity;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Step {
    Verify,
    Pause,
    Drain,
    Fence,
    CatchUp,
    Promote,
    Stamp,
    LockWrites,
    Resume,
}

/// What the plan says about the tables: the moving ones fenced on the source, and those locked on
/// each side afterwards.
#[derive(Debug, Clone, Default)]
pub struct Tables {
    pub fenced: String,
    pub locked_on_source: String,
    pub locked_on_target: String,
}

impl Step {
    pub const ALL: [Step; 9] = [
        Step::Verify,
        Step::Pause,
        Step::Drain,
        Step::Fence,
        Step::CatchUp,
        Step::Promote,
        Step::Stamp,
        Step::LockWrites,
        Step::Resume,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Step::Verify => "verify",
            Step::Pause => "pause",
            Step::Drain => "drain",
            Step::Fence => "fence",
            Step::CatchUp => "catch_up",
            Step::Promote => "promote",
            Step::Stamp => "stamp",
            Step::LockWrites => "lock_writes",
            Step::Resume => "resume",
        }
    }

    pub fn from_name(name: &str) -> Option<Step> {
        Step::ALL.into_iter().find(|s| s.name() == name)
    }

    /// Where the step acts.
    pub fn database(self, config: &CutoverConfig) -> String {
        let (source, target) = (&config.source, &config.target);
        match self {
            Step::Pause | Step::Drain | Step::Fence => format!("{source} (source)"),
            Step::CatchUp | Step::Promote => format!("{target} (replica)"),
            Step::Verify | Step::Stamp | Step::LockWrites | Step::Resume => {
                format!("{source} and {target}")
            }
        }
    }

    /// What the step will do, for `plan`.
    pub fn action(self, config: &CutoverConfig, split: &Split, tables: &Tables) -> String {
        let (source, target) = (&config.source, &config.target);
        match self {
            Step::Verify => "check, changing nothing, that the target is a streaming replica of the source \
                 (in recovery, same system_identifier and timeline) with the same identity row"
                .into(),
            Step::Pause => "stop new batch claims (claims_paused = true; replicated)".into(),
            Step::Drain => format!(
                "wait until no batch lease is live (at most {}s)",
                config.drain_timeout.as_secs()
            ),
            Step::Fence => format!(
                "refuse application writes on {source} to the tables moving to {target} \
                 (SQLSTATE {}, retryable): {}",
                fence::SQLSTATE,
                tables.fenced
            ),
            Step::CatchUp => format!(
                "read the source's WAL position (after the fence), wait until the replica has replayed it (at most {}s)",
                config.catch_up_timeout.as_secs()
            ),
            Step::Promote => {
                let promotion = match config.promotion {
                    Promotion::PgPromote => "pg_promote() on the replica".to_string(),
                    Promotion::External => format!(
                        "wait for an external promotion (Patroni) of the replica (at most {}s)",
                        config.promote_timeout.as_secs()
                    ),
                };
                if config.reversible {
                    format!(
                        "{promotion}; then, still fenced, replicate the moving tables from the \
                         target back to the source (publication, slot, subscription without copy)"
                    )
                } else {
                    format!("{promotion}; not reversible: a rollback after it will be refused")
                }
            }
            Step::Stamp => format!(
                "stamp identities: source ({source}, [{}], epoch+1), target ({target}, [{}], epoch+1); \
                 lift the fence on the target, which takes the moving tables' writes from then on",
                split.staying.join(", "),
                split.moving.join(", ")
            ),
            Step::LockWrites => format!(
                "write-lock on {source} {}; on {target} {}; lift the fence on {source}",
                tables.locked_on_source, tables.locked_on_target
            ),
            Step::Resume => "allow batch claims again on both".into(),
        }
    }
}

/// `epoch_before`: the source's epoch when the cutover began; the stamp gives one more.
pub(super) fn run(
    cutover: &super::Cutover,
    step: Step,
    split: &Split,
    epoch_before: Option<i64>,
) -> Result<String> {
    let config = cutover.config();
    let (source_name, target_name) = (&config.source, &config.target);
    match step {
        Step::Verify => {
            let mut source = cutover.source()?;
            let mut target = cutover.target()?;
            let detail = verify::verify(&mut source, &mut target, source_name, target_name)?;
            if !config.reversible {
                return Ok(format!("{detail}; not reversible (reversible: false)"));
            }
            let relations = tables_of(
                &mut source,
                cutover.dictionary(),
                &split.moving_schemas(cutover.topology())?,
            )?;
            let missing = reverse::missing_requirements(&mut source, &mut target, &relations)?;
            if !missing.is_empty() {
                return Err(Error::Cutover(CutoverError::CutoverRequirements {
                    missing,
                }));
            }
            Ok(format!(
                "{detail}; reversible (wal_level logical, slots, keys on every moving table)"
            ))
        }
        Step::Pause => {
            identity::set_claims_paused(&mut cutover.source()?, true)?;
            Ok("claims paused on the source".into())
        }
        Step::Drain => drain(
            &mut cutover.source()?,
            config.drain_timeout,
            cutover.interrupt_handle(),
        ),
        Step::Fence => {
            let mut source = cutover.source()?;
            let schemas = split.moving_schemas(cutover.topology())?;
            let mut tx = source.transaction()?;
            // The catch-up waits for the WAL position read after this commit, and a replica
            // receives only WAL written out: an asynchronous commit (synchronous_commit = off)
            // could leave the fence, and the writes acknowledged before it, behind that position
            // (found by tests/replication_faults.rs). `local`: flushed here, without waiting for
            // a synchronous standby, which may be the very replica that is cut off.
            tx.batch_execute("SET LOCAL synchronous_commit = local")?;
            let relations = tables_of(&mut tx, cutover.dictionary(), &schemas)?;
            fence::lay(&mut tx, &relations, target_name, &cutover.name())?;
            if config.reversible {
                reverse::prepare_source(&mut tx)?;
            }
            tx.commit()?;
            Ok(format!(
                "fenced on {source_name}: {}",
                tables::describe(&relations)
            ))
        }
        Step::CatchUp => catch_up(cutover, config.catch_up_timeout),
        Step::Promote => {
            let mut target = cutover.target()?;
            let promoted = promote(&mut target, config, cutover.interrupt_handle())?;
            if !config.reversible {
                return Ok(promoted);
            }
            // Still fenced: the target takes no write before the subscription's slot exists.
            let relations = tables_of(
                &mut target,
                cutover.dictionary(),
                &split.moving_schemas(cutover.topology())?,
            )?;
            let reverse = reverse::set_up(
                &mut cutover.source()?,
                &mut target,
                &config.target_url,
                &cutover.name(),
                &relations,
            )?;
            Ok(format!("{promoted}; {reverse}"))
        }
        Step::Stamp => stamp(cutover, split, epoch_before),
        Step::LockWrites => {
            let mut source = cutover.source()?;
            let mut tx = source.transaction()?;
            let on_source = lock_writes::lock_writes(
                &mut tx,
                cutover.dictionary(),
                cutover.topology(),
                source_name,
                &split.staying,
            )?;
            // Locked and unfenced in one transaction: the moving tables are never writable here.
            fence::lift(&mut tx)?;
            tx.commit()?;
            let mut target = cutover.target()?;
            let mut tx = target.transaction()?;
            let on_target = lock_writes::lock_writes(
                &mut tx,
                cutover.dictionary(),
                cutover.topology(),
                target_name,
                &split.moving,
            )?;
            tx.commit()?;
            Ok(format!(
                "write-locked on {source_name}: {}; on {target_name}: {}",
                tables::describe(&on_source),
                tables::describe(&on_target)
            ))
        }
        Step::Resume => {
            identity::set_claims_paused(&mut cutover.source()?, false)?;
            identity::set_claims_paused(&mut cutover.target()?, false)?;
            Ok("claims allowed on both".into())
        }
    }
}

fn wait_until(
    interrupt: &Interrupt,
    step: Step,
    timeout: Duration,
    mut check: impl FnMut() -> Result<Option<String>>,
    describe: impl Fn() -> String,
) -> Result<String> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(detail) = check()? {
            return Ok(detail);
        }
        if Instant::now() >= deadline {
            return Err(Error::Cutover(CutoverError::CutoverTimeout {
                step: step.name().into(),
                seconds: timeout.as_secs_f64(),
                waiting_for: describe(),
            }));
        }
        interrupt.sleep(
            Duration::from_millis(20),
            &format!("the wait of cutover step {}", step.name()),
        )?;
    }
}

pub(super) fn drain(
    source: &mut Client,
    timeout: Duration,
    interrupt: &Interrupt,
) -> Result<String> {
    let mut live = 0i64;
    wait_until(
        interrupt,
        Step::Drain,
        timeout,
        || {
            live = source
                .query_one(
                    "SELECT count(*) FROM batched_background_migration_jobs \
                     WHERE status = 1 AND lease_expires_at > now()",
                    &[],
                )?
                .get(0);
            Ok((live == 0).then(|| "no live batch lease".to_string()))
        },
        || "live batch leases to end".into(),
    )
}

fn catch_up(cutover: &super::Cutover, timeout: Duration) -> Result<String> {
    let lsn: String = cutover
        .source()?
        .query_one("SELECT pg_current_wal_lsn()::text", &[])?
        .get(0);
    let mut target = cutover.target()?;
    wait_until(
        cutover.interrupt_handle(),
        Step::CatchUp,
        timeout,
        || {
            let row = target.query_one(
                "SELECT pg_is_in_recovery(), \
                 COALESCE(pg_last_wal_replay_lsn() >= $1::text::pg_lsn, false)",
                &[&lsn],
            )?;
            let (recovering, replayed): (bool, bool) = (row.get(0), row.get(1));
            if !recovering {
                return Err(Error::Cutover(CutoverError::CutoverState {
                    message: "the target is not a replica in recovery: it was promoted before the \
                              catch-up, so it may miss the source's last writes"
                        .into(),
                }));
            }
            Ok(replayed.then(|| format!("replica replayed the source's WAL up to {lsn}")))
        },
        || format!("the replica to replay the source's WAL position {lsn}"),
    )
}

fn promote(target: &mut Client, config: &CutoverConfig, interrupt: &Interrupt) -> Result<String> {
    let recovering: bool = target.query_one("SELECT pg_is_in_recovery()", &[])?.get(0);
    if !recovering {
        return Ok("the replica was already promoted".into());
    }
    if config.promotion == Promotion::PgPromote {
        let seconds = i32::try_from(config.promote_timeout.as_secs().max(1)).unwrap_or(i32::MAX);
        let promoted: bool = target
            .query_one("SELECT pg_promote(true, $1)", &[&seconds])?
            .get(0);
        if !promoted {
            return Err(Error::Cutover(CutoverError::CutoverTimeout {
                step: Step::Promote.name().into(),
                seconds: f64::from(seconds),
                waiting_for: "pg_promote() to finish".into(),
            }));
        }
        return Ok("promoted with pg_promote()".into());
    }
    wait_until(
        interrupt,
        Step::Promote,
        config.promote_timeout,
        || {
            let recovering: bool = target.query_one("SELECT pg_is_in_recovery()", &[])?.get(0);
            Ok((!recovering).then(|| "promoted externally".to_string()))
        },
        || "an external promotion of the replica".into(),
    )
}

fn stamp(cutover: &super::Cutover, split: &Split, epoch_before: Option<i64>) -> Result<String> {
    let config = cutover.config();
    let mut source = cutover.source()?;
    let mut target = cutover.target()?;
    let epoch = identity::next_epoch(&mut source, &mut target, epoch_before)?;
    // The target takes the moving tables over: its stamp and the end of its copy of the fence
    // commit together.
    let mut tx = target.transaction()?;
    identity::stamp(&mut tx, &config.target, &split.moving, epoch)?;
    fence::lift(&mut tx)?;
    tx.commit()?;
    identity::stamp(&mut source, &config.source, &split.staying, epoch)?;
    Ok(format!(
        "{} is ({0}, [{}], {epoch}); {} is ({2}, [{}], {epoch}) and takes the writes of its tables",
        config.source,
        split.staying.join(", "),
        config.target,
        split.moving.join(", ")
    ))
}
