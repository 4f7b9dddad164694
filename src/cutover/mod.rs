//! The cutover of docs/architecture.md section 10: a replica of the shared database is promoted to become
//! the split-out database (`ci`, with the databases that fall back to it), while the source keeps
//! the rest (`main`, and `sec` if it still shares main).
//!
//! `plan` lists the steps and changes nothing; `execute` verifies the target, then runs the steps
//! in order, records each in `schema_fence_cutover_log` on the source, and on a second run resumes
//! after the last finished step; `rollback` before the promotion lifts the fence and the pause.

mod error;
pub use error::CutoverError;

mod cleanup;
mod fence;
mod lock_writes;
mod log;
mod merge;
mod pooler;
mod reverse;
mod rollback;
mod sequences;
mod settings;
mod split;
mod steps;
mod tables;
mod verify;

use std::time::Duration;

use postgres::Client;

pub use cleanup::{cleanup, StaleRow};
pub use fence::SQLSTATE as FENCE_SQLSTATE;
pub use lock_writes::{lock_writes, unlock_writes, BYPASS, BYPASS_SETTING};
pub use log::{history, LogEntry};
pub use merge::MergeReport;
pub use reverse::subscriptions as reverse_subscriptions;
pub use rollback::RollbackStep;
pub use settings::CutoverSettings;
pub use split::{locked_schemas, Split};
pub use steps::Step;
pub use tables::{tables_of, Relation};

use crate::connect::{self, Connector};
use crate::dictionary::Dictionary;
use crate::error::{Error, Result, TopologyError};
use crate::interrupt::Interrupt;
use crate::topology::Topology;

/// How the replica becomes a primary.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Promotion {
    /// `pg_promote()` on the replica.
    PgPromote,
    /// Something else promotes it (Patroni, an operator); wait for it.
    External,
}

#[derive(Debug, Clone)]
pub struct CutoverConfig {
    pub source_url: String,
    pub target_url: String,
    /// The logical database that stays on the source (`main`).
    pub source: String,
    /// The logical database the promoted replica becomes (`ci`).
    pub target: String,
    pub promotion: Promotion,
    /// Bound on waiting for live batch leases to end.
    pub drain_timeout: Duration,
    /// Bound on waiting for the replica to replay the source's WAL position.
    pub catch_up_timeout: Duration,
    /// Bound on waiting for the promotion.
    pub promote_timeout: Duration,
    /// Set up reverse replication at the promotion, so that a rollback after it loses nothing.
    pub reversible: bool,
}

/// One step of the plan: what it will do, on which database, and whether a previous run
/// already finished it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedStep {
    pub step: Step,
    pub database: String,
    pub action: String,
    pub done: bool,
}

/// The measured windows of a cutover, from its log (None until both ends are logged).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Windows {
    /// Pause to the end of the resume: no batch was claimed on the source.
    pub claim_pause: Option<Duration>,
    /// Fence to the end of the stamp: the moving tables accepted no write anywhere.
    pub write: Option<Duration>,
}

/// What running one step of a rollback after the promotion did.
#[derive(Debug, Clone, PartialEq)]
pub struct RollbackOutcome {
    pub step: RollbackStep,
    pub database: String,
    pub duration: Duration,
    pub detail: String,
    pub skipped: bool,
}

/// What running one step did.
#[derive(Debug, Clone, PartialEq)]
pub struct StepOutcome {
    pub step: Step,
    pub database: String,
    pub duration: Duration,
    pub detail: String,
    /// Finished by an earlier run; nothing was done now.
    pub skipped: bool,
}

pub struct Cutover {
    config: CutoverConfig,
    topology: Topology,
    dictionary: std::sync::Arc<Dictionary>,
    /// Ends the waits and cancels the queries of the call in progress.
    interrupt: Interrupt,
}

impl Cutover {
    pub fn new(
        config: CutoverConfig,
        topology: Topology,
        dictionary: std::sync::Arc<Dictionary>,
    ) -> Result<Self> {
        for name in [&config.source, &config.target] {
            if topology.database(name).is_none() {
                return Err(Error::Topology(TopologyError::UnknownDatabase {
                    name: name.clone(),
                    known: topology.names(),
                }));
            }
        }
        if config.source == config.target {
            return Err(Error::InvalidArgument {
                what: "cutover".into(),
                problem: format!("source and target are both {:?}", config.source),
            });
        }
        Ok(Cutover {
            config,
            topology,
            dictionary,
            interrupt: Interrupt::new(),
        })
    }

    pub fn config(&self) -> &CutoverConfig {
        &self.config
    }

    /// A name for this cutover in the log: `main->ci`.
    pub fn name(&self) -> String {
        format!("{}->{}", self.config.source, self.config.target)
    }

    /// The handle another thread fires to interrupt a call in progress (its waits end, its
    /// queries are cancelled); the step it interrupts is not recorded finished, so `execute`
    /// resumes it.
    pub fn interrupt(&self) -> Interrupt {
        self.interrupt.clone()
    }

    pub(crate) fn interrupt_handle(&self) -> &Interrupt {
        &self.interrupt
    }

    pub(crate) fn source(&self) -> Result<Client> {
        self.connect(&self.config.source_url, &self.config.source)
    }

    pub(crate) fn target(&self) -> Result<Client> {
        self.connect(&self.config.target_url, &self.config.target)
    }

    fn connect(&self, url: &str, database: &str) -> Result<Client> {
        self.interrupt.check("the cutover")?;
        let cutover_error = |e: Error| {
            Error::Cutover(CutoverError::CutoverConnection {
                database: database.to_string(),
                message: e.to_string(),
            })
        };
        let connector = Connector::new(url, &connect::application_name(database, "cutover"))
            .map_err(cutover_error)?;
        let mut client = connector
            .connect_with(&self.interrupt)
            .map_err(cutover_error)?;
        pooler::refuse(&mut client, &connector, database, &address(url))?;
        self.interrupt.register(&connector, &client);
        Ok(client)
    }

    /// How the cutover names its target in the log: host, port and database of the URL (no
    /// password), so a rerun against another server is refused.
    fn target_address(&self) -> String {
        address(&self.config.target_url)
    }

    /// The split this cutover makes, from what the source served when it began.
    pub fn split(&self) -> Result<Split> {
        let mut source = self.source()?;
        self.split_on(&mut source)
    }

    fn split_on(&self, source: &mut Client) -> Result<Split> {
        let before = match log::begun(source, &self.name())? {
            Some(begun) => begun.source_serves,
            None => crate::store::identity::require(source)?.serves,
        };
        Split::new(
            &self.topology,
            &self.config.source,
            &before,
            &self.config.target,
        )
    }

    /// Refuses a run against another target than the one the logged cutover began with.
    fn check_logged_target(&self, source: &mut Client) -> Result<()> {
        let Some(begun) = log::begun(source, &self.name())? else {
            return Ok(());
        };
        let now = self.target_address();
        if begun.target != now {
            return Err(Error::Cutover(CutoverError::CutoverTarget {
                target: self.config.target.clone(),
                differences: vec![format!(
                    "cutover {} was begun against {}, and this run names {now}: finish or roll \
                     back that cutover with its own target",
                    self.name(),
                    begun.target
                )],
            }));
        }
        Ok(())
    }

    /// Every step with what it will do; reads the log and the tables, changes nothing.
    pub fn plan(&self) -> Result<Vec<PlannedStep>> {
        self.interrupt.forget_connections();
        let mut source = self.source()?;
        let done = log::finished_steps(&mut source, &self.name())?;
        let split = self.split_on(&mut source)?;
        let fenced = tables_of(
            &mut source,
            &self.dictionary,
            &split.moving_schemas(&self.topology)?,
        )?;
        let on_source = tables_of(
            &mut source,
            &self.dictionary,
            &locked_schemas(&self.topology, &split.staying)?,
        )?;
        let on_target = tables_of(
            &mut self.target()?,
            &self.dictionary,
            &locked_schemas(&self.topology, &split.moving)?,
        )?;
        let tables = steps::Tables {
            fenced: tables::describe(&fenced),
            locked_on_source: tables::describe(&on_source),
            locked_on_target: tables::describe(&on_target),
        };
        Ok(Step::ALL
            .iter()
            .map(|&step| PlannedStep {
                step,
                database: step.database(&self.config),
                action: step.action(&self.config, &split, &tables),
                done: done.contains(&step),
            })
            .collect())
    }

    /// Runs one step (or skips it when an earlier run finished it), recording it in the log.
    /// Verify records itself only once it passed: a wrong target changes nothing anywhere.
    pub fn run_step(&self, step: Step) -> Result<StepOutcome> {
        self.interrupt.forget_connections();
        self.run_step_on(step).map_err(|e| {
            self.interrupt
                .explain(e, &format!("cutover step {}", step.name()))
        })
    }

    fn run_step_on(&self, step: Step) -> Result<StepOutcome> {
        let mut source = self.source()?;
        self.check_logged_target(&mut source)?;
        let name = self.name();
        let database = step.database(&self.config);
        let done = log::finished_steps(&mut source, &name)?;
        if done.contains(&step) {
            return Ok(StepOutcome {
                step,
                database,
                duration: Duration::ZERO,
                detail: "finished by an earlier run".into(),
                skipped: true,
            });
        }
        if let Some(missing) = Step::ALL
            .iter()
            .take_while(|s| **s != step)
            .find(|s| !done.contains(s))
        {
            return Err(Error::Cutover(CutoverError::CutoverOrder {
                step: step.name().into(),
                missing: missing.name().into(),
            }));
        }
        let split = self.split_on(&mut source)?;
        let begun = self.begun(&mut source, &name, &split)?;
        let started = std::time::Instant::now();
        let (detail, duration) = if step == Step::Verify {
            let detail = steps::run(self, step, &split, begun.epoch)?;
            let duration = started.elapsed();
            log::ensure_table(&mut source)?;
            let log_id = log::start(&mut source, &name, step.name(), &database, &begun)?;
            log::finish(&mut source, log_id, &detail)?;
            (detail, duration)
        } else {
            log::ensure_table(&mut source)?;
            let log_id = log::start(&mut source, &name, step.name(), &database, &begun)?;
            let detail = steps::run(self, step, &split, begun.epoch)?;
            let duration = started.elapsed();
            // After the promotion the source may not be reachable through the same session in
            // every setup; a fresh connection records the end of the step.
            log::finish(&mut self.source()?, log_id, &detail)?;
            (detail, duration)
        };
        Ok(StepOutcome {
            step,
            database,
            duration,
            detail,
            skipped: false,
        })
    }

    /// Runs every step in order, resuming after the last finished one; `on_step` hears each.
    pub fn execute(&self, mut on_step: impl FnMut(&StepOutcome)) -> Result<Vec<StepOutcome>> {
        let mut outcomes = Vec::with_capacity(Step::ALL.len());
        for step in Step::ALL {
            let outcome = self.run_step(step)?;
            on_step(&outcome);
            outcomes.push(outcome);
        }
        Ok(outcomes)
    }

    /// What the log records of the run named `name` (the cutover or its rollback): what its first
    /// step recorded, or, for that first step, the state now.
    fn begun(&self, source: &mut Client, name: &str, split: &Split) -> Result<log::Begun> {
        if let Some(begun) = log::begun(source, name)? {
            return Ok(begun);
        }
        let identity = crate::store::identity::require(source)?;
        Ok(log::Begun {
            source_serves: split.before.clone(),
            target: self.target_address(),
            reversible: self.config.reversible,
            epoch: Some(identity.epoch),
        })
    }

    /// The name the rollback's steps are logged under.
    fn rollback_name(&self) -> String {
        format!("{} rollback", self.name())
    }

    /// The claim pause and the write window, measured from the log.
    pub fn windows(&self) -> Result<Windows> {
        let mut source = self.source()?;
        let name = self.name();
        let secs = |d: Option<f64>| d.map(|s| Duration::from_secs_f64(s.max(0.0)));
        Ok(Windows {
            claim_pause: secs(log::window(&mut source, &name, Step::Pause, Step::Resume)?),
            write: secs(log::window(&mut source, &name, Step::Fence, Step::Stamp)?),
        })
    }

    /// Undoes the cutover. Before the promotion: lifts the fence and the pause on the source and
    /// forgets the steps run so far (no outcome). After it: the logged, resumable steps of
    /// [`RollbackStep`], each heard by `on_step`; then the cutover's log is closed so that a new
    /// `execute` splits again.
    pub fn rollback(
        &self,
        mut on_step: impl FnMut(&RollbackOutcome),
    ) -> Result<Vec<RollbackOutcome>> {
        if self.rollback_before_promotion()? {
            return Ok(vec![]);
        }
        let mut outcomes = Vec::with_capacity(RollbackStep::ALL.len());
        for step in RollbackStep::ALL {
            let outcome = self.run_rollback_step(step)?;
            on_step(&outcome);
            outcomes.push(outcome);
        }
        self.finish_rollback()?;
        Ok(outcomes)
    }

    /// The start of a rollback. Before the promotion it is the whole rollback: lifts the fence and
    /// the pause, forgets the steps run so far, and returns true. After it, returns false when the
    /// rollback steps may run, and refuses a cutover without reverse replication.
    pub fn rollback_before_promotion(&self) -> Result<bool> {
        self.interrupt.forget_connections();
        let mut source = self.source()?;
        self.check_logged_target(&mut source)?;
        log::ensure_table(&mut source)?;
        let started_promotion =
            log::started_steps(&mut source, &self.name())?.contains(&Step::Promote);
        if !started_promotion {
            let mut tx = source.transaction()?;
            crate::store::identity::set_claims_paused(&mut tx, false)?;
            fence::lift(&mut tx)?;
            log::forget(&mut tx, &self.name())?;
            tx.commit()?;
            return Ok(true);
        }
        let reversible = log::begun(&mut source, &self.name())?.is_some_and(|b| b.reversible);
        if !reversible {
            return Err(Error::Cutover(CutoverError::CutoverNotReversible {
                cutover: self.name(),
                reason: "it ran with reversible: false, so no reverse replication carried the \
                         writes the target took back to the source"
                    .into(),
            }));
        }
        Ok(false)
    }

    /// Closes the cutover and its rollback in the log once every rollback step finished, so
    /// that a new `execute` splits again.
    pub fn finish_rollback(&self) -> Result<()> {
        let mut source = self.source()?;
        let done = log::finished_names(&mut source, &self.rollback_name())?;
        if let Some(missing) = RollbackStep::ALL
            .iter()
            .find(|s| !done.iter().any(|d| d == s.name()))
        {
            return Err(Error::Cutover(CutoverError::CutoverOrder {
                step: "the end of the rollback".into(),
                missing: format!("rollback {}", missing.name()),
            }));
        }
        log::archive(&mut source, &[&self.name(), &self.rollback_name()])
    }

    /// Runs one step of the rollback after the promotion (or skips it when an earlier run
    /// finished it), recording it in the log.
    pub fn run_rollback_step(&self, step: RollbackStep) -> Result<RollbackOutcome> {
        self.interrupt.forget_connections();
        let mut source = self.source()?;
        self.check_logged_target(&mut source)?;
        let name = self.rollback_name();
        let database = step.database(self);
        let done = log::finished_names(&mut source, &name)?;
        if done.iter().any(|d| d == step.name()) {
            return Ok(RollbackOutcome {
                step,
                database,
                duration: Duration::ZERO,
                detail: "finished by an earlier run".into(),
                skipped: true,
            });
        }
        if let Some(missing) = RollbackStep::ALL
            .iter()
            .take_while(|s| **s != step)
            .find(|s| !done.iter().any(|d| d == s.name()))
        {
            return Err(Error::Cutover(CutoverError::CutoverOrder {
                step: format!("rollback {}", step.name()),
                missing: format!("rollback {}", missing.name()),
            }));
        }
        let split = self.split_on(&mut source)?;
        let begun = self.begun(&mut source, &name, &split)?;
        let started = std::time::Instant::now();
        let log_id = log::start(&mut source, &name, step.name(), &database, &begun)?;
        let detail = rollback::run(self, step, &split, begun.epoch)?;
        let duration = started.elapsed();
        log::finish(&mut self.source()?, log_id, &detail)?;
        Ok(RollbackOutcome {
            step,
            database,
            duration,
            detail,
            skipped: false,
        })
    }

    /// The reverse replication's lag: bytes of the target's WAL not yet confirmed by the source,
    /// and seconds since the source last heard from it; None without reverse replication.
    pub fn reverse_lag(&self) -> Result<Option<(i64, Option<f64>)>> {
        reverse::lag(&mut self.source()?, &mut self.target()?, &self.name())
    }

    pub(crate) fn topology(&self) -> &Topology {
        &self.topology
    }

    pub(crate) fn dictionary(&self) -> &Dictionary {
        &self.dictionary
    }
}

/// Lays the write locks of the database at `db` again, from what its identity serves now: after
/// a table (or a partition) of a locked `gitlab_schema` was created there.
pub fn relock(
    db: &mut Client,
    dictionary: &Dictionary,
    topology: &Topology,
) -> Result<Vec<Relation>> {
    let identity = crate::store::identity::require(db)?;
    let mut tx = db.transaction()?;
    let locked = lock_writes(
        &mut tx,
        dictionary,
        topology,
        &identity.name,
        &identity.serves,
    )?;
    tx.commit()?;
    Ok(locked)
}

/// `host:port/database` of a PostgreSQL URL, without the password.
fn address(url: &str) -> String {
    let Ok(config) = url.parse::<postgres::Config>() else {
        return url.rsplit('@').next().unwrap_or(url).to_string();
    };
    let host = config
        .get_hosts()
        .first()
        .map(|h| match h {
            postgres::config::Host::Tcp(name) => name.clone(),
            postgres::config::Host::Unix(path) => path.display().to_string(),
        })
        .unwrap_or_default();
    let port = config.get_ports().first().copied().unwrap_or(5432);
    format!("{host}:{port}/{}", config.get_dbname().unwrap_or(""))
}
