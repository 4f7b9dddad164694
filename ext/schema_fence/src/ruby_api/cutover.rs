//! `SchemaFence::Cutover`: plan, run a step, roll back; and the cleanup of stale rows. Every call
//! that talks to PostgreSQL releases the GVL. The step loop, events and keyword arguments live in
//! `lib/schema_fence/cutover.rb`.

use magnus::{function, method, prelude::*, Error, RArray, RHash, RModule, Ruby};
use schema_fence::cutover::{self as core, CutoverSettings, Step};

use super::cutover_rows::{self, CleanupRow, LogRow};
use super::dictionary::Dictionary;
use super::options::Options;
use super::topology::Topology;
use super::{errors, gvl};

#[magnus::wrap(class = "SchemaFence::Cutover", free_immediately, size)]
pub(crate) struct Cutover(core::Cutover, schema_fence::interrupt::Interrupt);

/// A step a cutover or a rollback ran: `step`, `database`, `duration` (seconds), `detail`,
/// `skipped` (finished by an earlier run).
#[magnus::wrap(class = "SchemaFence::Cutover::StepRun", free_immediately, size)]
pub(crate) struct StepRun {
    step: &'static str,
    database: String,
    duration: f64,
    detail: String,
    skipped: bool,
}

impl StepRun {
    /// A cutover step's and a rollback step's outcome alike.
    fn new(
        step: &'static str,
        database: String,
        duration: std::time::Duration,
        detail: String,
        skipped: bool,
    ) -> Self {
        StepRun {
            step,
            database,
            duration: duration.as_secs_f64(),
            detail,
            skipped,
        }
    }

    fn step(&self) -> &'static str {
        self.step
    }
    fn database(&self) -> String {
        self.database.clone()
    }
    fn duration(&self) -> f64 {
        self.duration
    }
    fn detail(&self) -> String {
        self.detail.clone()
    }
    fn skipped(&self) -> bool {
        self.skipped
    }
}

/// A step of the plan: `step`, `database`, `action`, `done`.
#[magnus::wrap(class = "SchemaFence::Cutover::PlanRow", free_immediately, size)]
pub(crate) struct PlanRow(core::PlannedStep);

impl PlanRow {
    fn step(&self) -> &'static str {
        self.0.step.name()
    }
    fn database(&self) -> String {
        self.0.database.clone()
    }
    fn action(&self) -> String {
        self.0.action.clone()
    }
    fn done(&self) -> bool {
        self.0.done
    }
}

impl Cutover {
    /// `settings` holds the keyword arguments of `SchemaFence::Cutover.new` (seconds as numbers).
    fn new(
        ruby: &Ruby,
        topology: &Topology,
        dictionary: &Dictionary,
        settings: RHash,
    ) -> Result<Self, Error> {
        let mut read = Options::new(ruby, settings, "Cutover.new");
        let source_url: String = read.required("source_url")?;
        let target_url: String = read.required("target_url")?;
        let defaults = CutoverSettings::new(&source_url, &target_url);
        let settings = CutoverSettings {
            source: read.or("source", defaults.source.clone())?,
            target: read.or("target", defaults.target.clone())?,
            promote: read.or("promote", defaults.promote)?,
            drain_timeout_seconds: read.or("drain_timeout", defaults.drain_timeout_seconds)?,
            catch_up_timeout_seconds: read
                .or("catch_up_timeout", defaults.catch_up_timeout_seconds)?,
            promote_timeout_seconds: read
                .or("promote_timeout", defaults.promote_timeout_seconds)?,
            reversible: read.or("reversible", defaults.reversible)?,
            ..defaults
        };
        read.finish()?;
        let config = settings.config().map_err(|e| errors::to_ruby(ruby, e))?;
        core::Cutover::new(config, topology.inner.clone(), dictionary.inner.clone())
            .map(|c| {
                let interrupt = c.interrupt();
                Self(c, interrupt)
            })
            .map_err(|e| errors::to_ruby(ruby, e))
    }

    fn with<T: Send>(
        ruby: &Ruby,
        work: impl FnOnce() -> schema_fence::Result<T> + Send,
    ) -> Result<T, Error> {
        gvl::without_gvl(ruby, work)?.map_err(|e| errors::to_ruby(ruby, e))
    }

    /// Like `with`, interruptible: Ruby's interrupts end the cutover's waits and cancel its queries.
    fn on<T: Send>(
        ruby: &Ruby,
        rb_self: &Self,
        work: impl FnOnce(&core::Cutover) -> schema_fence::Result<T> + Send,
    ) -> Result<T, Error> {
        gvl::interruptible(ruby, &rb_self.1, || work(&rb_self.0))?
            .map_err(|e| errors::to_ruby(ruby, e))
    }

    fn plan(ruby: &Ruby, rb_self: &Self) -> Result<RArray, Error> {
        let plan = Self::on(ruby, rb_self, |c| c.plan())?;
        let list = ruby.ary_new_capa(plan.len());
        for p in plan {
            list.push(ruby.obj_wrap(PlanRow(p)))?;
        }
        Ok(list)
    }

    fn run_step(ruby: &Ruby, rb_self: &Self, name: String) -> Result<StepRun, Error> {
        let step = Step::from_name(&name).ok_or_else(|| {
            errors::raise(
                ruby,
                "InvalidArgumentError",
                format!(
                    "unknown cutover step {name:?}; the steps are {}",
                    Step::ALL.map(|s| s.name()).join(", ")
                ),
            )
        })?;
        let o = Self::on(ruby, rb_self, |c| c.run_step(step))?;
        Ok(StepRun::new(
            o.step.name(),
            o.database,
            o.duration,
            o.detail,
            o.skipped,
        ))
    }

    /// `[claim_pause_seconds, write_window_seconds]`, nil until measured.
    fn windows(ruby: &Ruby, rb_self: &Self) -> Result<(Option<f64>, Option<f64>), Error> {
        let w = Self::on(ruby, rb_self, |c| c.windows())?;
        Ok((
            w.claim_pause.map(|d| d.as_secs_f64()),
            w.write.map(|d| d.as_secs_f64()),
        ))
    }

    /// One rollback step after the promotion.
    fn run_rollback_step(ruby: &Ruby, rb_self: &Self, name: String) -> Result<StepRun, Error> {
        let step = core::RollbackStep::from_name(&name).ok_or_else(|| {
            errors::raise(
                ruby,
                "InvalidArgumentError",
                format!(
                    "unknown rollback step {name:?}; the steps are {}",
                    core::RollbackStep::ALL.map(|s| s.name()).join(", ")
                ),
            )
        })?;
        let o = Self::on(ruby, rb_self, |c| c.run_rollback_step(step))?;
        Ok(StepRun::new(
            o.step.name(),
            o.database,
            o.duration,
            o.detail,
            o.skipped,
        ))
    }

    /// Whether the rollback runs the steps after the promotion (else it lifts the pause: done).
    fn rollback_before_promotion(ruby: &Ruby, rb_self: &Self) -> Result<bool, Error> {
        Self::on(ruby, rb_self, |c| c.rollback_before_promotion())
    }

    fn finish_rollback(ruby: &Ruby, rb_self: &Self) -> Result<(), Error> {
        Self::on(ruby, rb_self, |c| c.finish_rollback())
    }

    /// `[bytes, seconds]` of the reverse replication, or nil.
    fn reverse_lag(ruby: &Ruby, rb_self: &Self) -> Result<Option<(i64, Option<f64>)>, Error> {
        Self::on(ruby, rb_self, |c| c.reverse_lag())
    }

    fn rollback_steps(ruby: &Ruby) -> RArray {
        ruby.ary_from_vec(core::RollbackStep::ALL.map(|s| s.name()).to_vec())
    }

    fn steps(ruby: &Ruby) -> RArray {
        ruby.ary_from_vec(Step::ALL.map(|s| s.name()).to_vec())
    }
}

/// The stale rows of the database at `url` (deleted with their jobs when `delete`).
fn cleanup(ruby: &Ruby, url: String, topology: &Topology, delete: bool) -> Result<RArray, Error> {
    let topology = topology.inner.clone();
    let stale = Cutover::with(ruby, move || {
        let mut client = schema_fence::connect::connect(&url, None, "cleanup")?;
        core::cleanup(&mut client, &topology, delete)
    })?;
    super::wrapped_list(ruby, stale.into_iter().map(CleanupRow))
}

fn unlock_writes(ruby: &Ruby, url: String) -> Result<Vec<String>, Error> {
    Cutover::with(ruby, move || {
        let mut client = schema_fence::connect::connect(&url, None, "unlock_writes")?;
        core::unlock_writes(&mut client)
    })
}

/// The latest `limit` rows of the cutover log of the database at `url`, newest first.
fn history(ruby: &Ruby, url: String, limit: i64) -> Result<RArray, Error> {
    let entries = Cutover::with(ruby, move || {
        let mut client = schema_fence::connect::connect(&url, None, "history")?;
        core::history(&mut client, limit)
    })?;
    super::wrapped_list(ruby, entries.into_iter().map(LogRow))
}

/// `[[name, seconds_since_last_message], ...]`: the reverse replications the database at `url`
/// subscribes to.
fn reverse_subscriptions(ruby: &Ruby, url: String) -> Result<Vec<(String, Option<f64>)>, Error> {
    Cutover::with(ruby, move || {
        let mut client = schema_fence::connect::connect(&url, None, "reverse_replications")?;
        core::reverse_subscriptions(&mut client)
    })
}

fn fence_sqlstate() -> &'static str {
    core::FENCE_SQLSTATE
}

/// The tables write-locked again on the database at `url`.
fn relock(
    ruby: &Ruby,
    url: String,
    dictionary: &Dictionary,
    topology: &Topology,
) -> Result<Vec<String>, Error> {
    let (dictionary, topology) = (dictionary.inner.clone(), topology.inner.clone());
    let locked = Cutover::with(ruby, move || {
        let mut client = schema_fence::connect::connect(&url, None, "lock_writes")?;
        core::relock(&mut client, &dictionary, &topology)
    })?;
    Ok(locked.into_iter().map(|r| r.name).collect())
}

pub(crate) fn init(ruby: &Ruby, module: &RModule) -> Result<(), Error> {
    let class = module.define_class("Cutover", ruby.class_object())?;
    let run = class.define_class("StepRun", ruby.class_object())?;
    run.define_method("step", method!(StepRun::step, 0))?;
    run.define_method("database", method!(StepRun::database, 0))?;
    run.define_method("duration", method!(StepRun::duration, 0))?;
    run.define_method("detail", method!(StepRun::detail, 0))?;
    run.define_method("skipped", method!(StepRun::skipped, 0))?;
    cutover_rows::init(ruby, &class)?;
    let plan = class.define_class("PlanRow", ruby.class_object())?;
    plan.define_method("step", method!(PlanRow::step, 0))?;
    plan.define_method("database", method!(PlanRow::database, 0))?;
    plan.define_method("action", method!(PlanRow::action, 0))?;
    plan.define_method("done", method!(PlanRow::done, 0))?;
    class.define_singleton_method("_new", function!(Cutover::new, 3))?;
    class.define_singleton_method("steps", function!(Cutover::steps, 0))?;
    class.define_singleton_method("_cleanup", function!(cleanup, 3))?;
    class.define_singleton_method("_unlock_writes", function!(unlock_writes, 1))?;
    class.define_singleton_method("_relock", function!(relock, 3))?;
    class.define_singleton_method("fence_sqlstate", function!(fence_sqlstate, 0))?;
    class.define_singleton_method("_history", function!(history, 2))?;
    class.define_singleton_method(
        "_reverse_subscriptions",
        function!(reverse_subscriptions, 1),
    )?;
    class.define_method("_plan", method!(Cutover::plan, 0))?;
    class.define_method("_run_step", method!(Cutover::run_step, 1))?;
    class.define_singleton_method("rollback_steps", function!(Cutover::rollback_steps, 0))?;
    class.define_method(
        "_rollback_before_promotion",
        method!(Cutover::rollback_before_promotion, 0),
    )?;
    class.define_method("_run_rollback_step", method!(Cutover::run_rollback_step, 1))?;
    class.define_method("_finish_rollback", method!(Cutover::finish_rollback, 0))?;
    class.define_method("_reverse_lag", method!(Cutover::reverse_lag, 0))?;
    class.define_method("_windows", method!(Cutover::windows, 0))?;
    Ok(())
}
