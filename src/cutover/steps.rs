//! The seven steps, in order.

use std::time::{Duration, Instant};

use postgres::Client;

use super::{lock_writes, CutoverConfig, Promotion};
use crate::error::{Error, Result};
use crate::interrupt::Interrupt;
use crate::topology::Topology;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Step {
    Pause,
    Drain,
    CatchUp,
    Promote,
    Stamp,
    LockWrites,
    Resume,
}

impl Step {
    pub const ALL: [Step; 7] = [
        Step::Pause,
        Step::Drain,
        Step::CatchUp,
        Step::Promote,
        Step::Stamp,
        Step::LockWrites,
        Step::Resume,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Step::Pause => "pause",
            Step::Drain => "drain",
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
            Step::Pause | Step::Drain => format!("{source} (source)"),
            Step::CatchUp | Step::Promote => format!("{target} (replica)"),
            Step::Stamp | Step::LockWrites | Step::Resume => format!("{source} and {target}"),
        }
    }

    /// What the step will do, for `plan`.
    pub fn action(self, config: &CutoverConfig, topology: &Topology) -> String {
        let (source, target) = (&config.source, &config.target);
        let locks = |db: &str| {
            topology
                .database(db)
                .map(|d| d.lock_gitlab_schemas.join(", "))
                .unwrap_or_default()
        };
        match self {
            Step::Pause => "stop new batch claims (claims_paused = true; replicated)".into(),
            Step::Drain => format!(
                "wait until no batch lease is live (at most {}s)",
                config.drain_timeout.as_secs()
            ),
            Step::CatchUp => format!(
                "read the source's WAL position, wait until the replica has replayed it (at most {}s)",
                config.catch_up_timeout.as_secs()
            ),
            Step::Promote => match config.promotion {
                Promotion::PgPromote => "pg_promote() on the replica".into(),
                Promotion::External => format!(
                    "wait for an external promotion (Patroni) of the replica (at most {}s)",
                    config.promote_timeout.as_secs()
                ),
            },
            Step::Stamp => format!(
                "stamp identities: source ({source}, [{source}], epoch+1), target ({target}, [{target}], epoch+1)"
            ),
            Step::LockWrites => format!(
                "write-lock on {source} the tables of {}; on {target} the tables of {}",
                locks(source),
                locks(target)
            ),
            Step::Resume => "allow batch claims again on both".into(),
        }
    }
}

pub(super) fn run(cutover: &super::Cutover, step: Step) -> Result<String> {
    let config = cutover.config();
    match step {
        Step::Pause => {
            set_paused(&mut cutover.source()?, true)?;
            Ok("claims paused on the source".into())
        }
        Step::Drain => drain(
            &mut cutover.source()?,
            config.drain_timeout,
            cutover.interrupt_handle(),
        ),
        Step::CatchUp => catch_up(cutover, config.catch_up_timeout),
        Step::Promote => promote(&mut cutover.target()?, config, cutover.interrupt_handle()),
        Step::Stamp => stamp(cutover),
        Step::LockWrites => {
            let (source, target) = (&config.source, &config.target);
            let on_source = lock_writes::lock_writes(
                &mut cutover.source()?,
                cutover.dictionary(),
                cutover.topology(),
                source,
            )?;
            let on_target = lock_writes::lock_writes(
                &mut cutover.target()?,
                cutover.dictionary(),
                cutover.topology(),
                target,
            )?;
            Ok(format!(
                "{} tables write-locked on {source}, {} on {target}",
                on_source.len(),
                on_target.len()
            ))
        }
        Step::Resume => {
            set_paused(&mut cutover.source()?, false)?;
            set_paused(&mut cutover.target()?, false)?;
            Ok("claims allowed on both".into())
        }
    }
}

fn set_paused(db: &mut Client, paused: bool) -> Result<()> {
    let updated = db.execute(
        &format!(
            "UPDATE public.schema_fence_identity SET claims_paused = $1 FROM {} WHERE singleton",
            crate::store::schema::STAMP
        ),
        &[&paused],
    )?;
    if updated == 0 {
        return Err(Error::IdentityMissing);
    }
    Ok(())
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
            return Err(Error::CutoverTimeout {
                step: step.name().into(),
                seconds: timeout.as_secs_f64(),
                waiting_for: describe(),
            });
        }
        interrupt.sleep(
            Duration::from_millis(20),
            &format!("the wait of cutover step {}", step.name()),
        )?;
    }
}

fn drain(source: &mut Client, timeout: Duration, interrupt: &Interrupt) -> Result<String> {
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
                return Err(Error::CutoverState {
                    message: "the target is not a replica in recovery: it was promoted before the \
                              catch-up, so it may miss the source's last writes"
                        .into(),
                });
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
        let seconds = config.promote_timeout.as_secs().clamp(1, i32::MAX as u64) as i32;
        let promoted: bool = target
            .query_one("SELECT pg_promote(true, $1)", &[&seconds])?
            .get(0);
        if !promoted {
            return Err(Error::CutoverTimeout {
                step: Step::Promote.name().into(),
                seconds: f64::from(seconds),
                waiting_for: "pg_promote() to finish".into(),
            });
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

fn stamp(cutover: &super::Cutover) -> Result<String> {
    let config = cutover.config();
    let mut source = cutover.source()?;
    let mut target = cutover.target()?;
    let read = |db: &mut Client| -> Result<(String, Vec<String>, i64)> {
        let row = db.query_one(
            "SELECT name, serves, epoch FROM public.schema_fence_identity WHERE singleton",
            &[],
        )?;
        Ok((row.get(0), row.get(1), row.get(2)))
    };
    let (_, _, source_epoch) = read(&mut source)?;
    let (_, _, target_epoch) = read(&mut target)?;
    // Both copies had the same epoch at the promotion; a resumed run may find one side stamped.
    let epoch = source_epoch.min(target_epoch) + 1;
    let write = |db: &mut Client, name: &str| -> Result<()> {
        db.execute(
            &format!(
                "UPDATE public.schema_fence_identity SET name = $1, serves = ARRAY[$1], epoch = $2, \
                 stamped_at = now(), (system_identifier, database_oid) = ({}) FROM {} WHERE singleton",
                crate::store::schema::HERE,
                crate::store::schema::STAMP
            ),
            &[&name, &epoch],
        )?;
        Ok(())
    };
    write(&mut target, &config.target)?;
    write(&mut source, &config.source)?;
    Ok(format!(
        "{} is ({0}, [{0}], {epoch}); {} is ({1}, [{1}], {epoch})",
        config.source, config.target
    ))
}
