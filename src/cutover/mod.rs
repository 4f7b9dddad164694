//! The cutover of DESIGN.md section 10: a replica of the shared database is promoted to become
//! the split-out database (`ci`), while the source keeps the rest (`main`).
//!
//! `plan` lists the steps and changes nothing; `execute` runs them in order, records each in
//! `schema_fence_cutover_log` on the source, and on a second run resumes after the last finished
//! step; `rollback` before the promotion lifts the pause.

mod cleanup;
mod lock_writes;
mod log;
mod steps;

use std::time::Duration;

use postgres::Client;

pub use cleanup::{cleanup, StaleRow};
pub use lock_writes::{lock_writes, unlock_writes, BYPASS, BYPASS_SETTING};
pub use steps::Step;

use crate::connect::{self, Connector};
use crate::dictionary::Dictionary;
use crate::error::{Error, Result};
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
                return Err(Error::UnknownDatabase {
                    name: name.clone(),
                    known: topology.names(),
                });
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
        let cutover_error = |e: Error| Error::CutoverConnection {
            database: database.to_string(),
            message: e.to_string(),
        };
        let connector = Connector::new(url, &connect::application_name(database, "cutover"))
            .map_err(cutover_error)?;
        let client = connector
            .connect_with(&self.interrupt)
            .map_err(cutover_error)?;
        self.interrupt.register(&connector, &client);
        Ok(client)
    }

    /// Every step with what it will do; reads the log, changes nothing.
    pub fn plan(&self) -> Result<Vec<PlannedStep>> {
        self.interrupt.forget_connections();
        let done = log::finished_steps(&mut self.source()?, &self.name())?;
        Ok(Step::ALL
            .iter()
            .map(|&step| PlannedStep {
                step,
                database: step.database(&self.config),
                action: step.action(&self.config, &self.topology),
                done: done.contains(&step),
            })
            .collect())
    }

    /// Runs one step (or skips it when an earlier run finished it), recording it in the log.
    pub fn run_step(&self, step: Step) -> Result<StepOutcome> {
        self.interrupt.forget_connections();
        self.run_step_on(step).map_err(|e| {
            self.interrupt
                .explain(e, &format!("cutover step {}", step.name()))
        })
    }

    fn run_step_on(&self, step: Step) -> Result<StepOutcome> {
        let mut source = self.source()?;
        log::ensure_table(&mut source)?;
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
            return Err(Error::CutoverOrder {
                step: step.name().into(),
                missing: missing.name().into(),
            });
        }
        let started = std::time::Instant::now();
        let log_id = log::start(&mut source, &name, step, &database)?;
        let detail = steps::run(self, step)?;
        let duration = started.elapsed();
        // After the promotion the source may not be reachable through the same session in every
        // setup; a fresh connection records the end of the step.
        log::finish(&mut self.source()?, log_id, &detail)?;
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

    /// Before the promotion: lifts the pause on the source and forgets the steps run so far.
    pub fn rollback(&self) -> Result<()> {
        self.interrupt.forget_connections();
        let mut source = self.source()?;
        log::ensure_table(&mut source)?;
        let done = log::finished_steps(&mut source, &self.name())?;
        let started_promotion =
            log::started_steps(&mut source, &self.name())?.contains(&Step::Promote);
        if done.contains(&Step::Promote) || started_promotion {
            return Err(Error::CutoverPastPromotion {
                cutover: self.name(),
            });
        }
        let mut tx = source.transaction()?;
        tx.execute(
            &format!(
                "UPDATE public.schema_fence_identity SET claims_paused = false FROM {} WHERE singleton",
                crate::store::schema::STAMP
            ),
            &[],
        )?;
        log::forget(&mut tx, &self.name())?;
        tx.commit()?;
        Ok(())
    }

    pub(crate) fn topology(&self) -> &Topology {
        &self.topology
    }

    pub(crate) fn dictionary(&self) -> &Dictionary {
        &self.dictionary
    }
}
