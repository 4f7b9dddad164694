//! `SchemaFence::Cutover`: plan, run a step, roll back; and the cleanup of stale rows. Every call
//! that talks to PostgreSQL releases the GVL. The step loop, events and keyword arguments live in
//! `lib/schema_fence/cutover.rb`.

use std::time::Duration;

use magnus::{function, method, prelude::*, Error, RArray, RModule, Ruby};
use schema_fence::cutover::{self as core, CutoverConfig, Promotion, Step};

use super::dictionary::Dictionary;
use super::topology::Topology;
use super::{errors, gvl};

#[magnus::wrap(class = "SchemaFence::Cutover", free_immediately, size)]
pub(crate) struct Cutover(core::Cutover, schema_fence::interrupt::Interrupt);

fn seconds(ruby: &Ruby, what: &str, value: f64) -> Result<Duration, Error> {
    if value.is_finite() && value > 0.0 {
        return Ok(Duration::from_secs_f64(value));
    }
    Err(errors::raise(
        ruby,
        "InvalidArgumentError",
        format!("invalid {what}: must be a positive number of seconds, got {value}"),
    ))
}

impl Cutover {
    fn new(
        ruby: &Ruby,
        urls: (String, String),
        names: (String, String),
        (topology, dictionary): (&Topology, &Dictionary),
        (promote, drain, catch_up, promote_timeout, reversible): (bool, f64, f64, f64, bool),
    ) -> Result<Self, Error> {
        let config = CutoverConfig {
            source_url: urls.0,
            target_url: urls.1,
            source: names.0,
            target: names.1,
            promotion: if promote {
                Promotion::PgPromote
            } else {
                Promotion::External
            },
            drain_timeout: seconds(ruby, "drain_timeout", drain)?,
            catch_up_timeout: seconds(ruby, "catch_up_timeout", catch_up)?,
            promote_timeout: seconds(ruby, "promote_timeout", promote_timeout)?,
            reversible,
        };
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

    /// `[[step, database, action, done], ...]`
    fn plan(ruby: &Ruby, rb_self: &Self) -> Result<RArray, Error> {
        let plan = Self::on(ruby, rb_self, |c| c.plan())?;
        let list = ruby.ary_new_capa(plan.len());
        for p in plan {
            list.push((p.step.name(), p.database, p.action, p.done))?;
        }
        Ok(list)
    }

    /// `[step, database, seconds, detail, skipped]`
    fn run_step(
        ruby: &Ruby,
        rb_self: &Self,
        name: String,
    ) -> Result<(String, String, f64, String, bool), Error> {
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
        let outcome = Self::on(ruby, rb_self, |c| c.run_step(step))?;
        Ok((
            outcome.step.name().to_string(),
            outcome.database,
            outcome.duration.as_secs_f64(),
            outcome.detail,
            outcome.skipped,
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

    /// One rollback step after the promotion: `[step, database, seconds, detail, skipped]`.
    fn run_rollback_step(
        ruby: &Ruby,
        rb_self: &Self,
        name: String,
    ) -> Result<(String, String, f64, String, bool), Error> {
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
        Ok((
            o.step.name().to_string(),
            o.database,
            o.duration.as_secs_f64(),
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

/// `[[id, job_class_name, table_name, gitlab_schema, jobs], ...]`
fn cleanup(ruby: &Ruby, url: String, topology: &Topology, delete: bool) -> Result<RArray, Error> {
    let topology = topology.inner.clone();
    let stale = Cutover::with(ruby, move || {
        let mut client = schema_fence::connect::connect(&url, None, "cleanup")?;
        core::cleanup(&mut client, &topology, delete)
    })?;
    let list = ruby.ary_new_capa(stale.len());
    for s in stale {
        list.push((
            s.id,
            s.job_class_name,
            s.table_name,
            s.gitlab_schema,
            s.jobs,
        ))?;
    }
    Ok(list)
}

fn unlock_writes(ruby: &Ruby, url: String) -> Result<Vec<String>, Error> {
    Cutover::with(ruby, move || {
        let mut client = schema_fence::connect::connect(&url, None, "unlock_writes")?;
        core::unlock_writes(&mut client)
    })
}

/// `[[cutover, step, database, started_at, finished_at, detail], ...]`, newest first.
fn history(ruby: &Ruby, url: String, limit: i64) -> Result<RArray, Error> {
    let entries = Cutover::with(ruby, move || {
        let mut client = schema_fence::connect::connect(&url, None, "history")?;
        core::history(&mut client, limit)
    })?;
    let list = ruby.ary_new_capa(entries.len());
    for e in entries {
        list.push((
            e.cutover,
            e.step,
            e.database,
            e.started_at,
            e.finished_at,
            e.detail,
        ))?;
    }
    Ok(list)
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
    class.define_singleton_method("_new", function!(Cutover::new, 4))?;
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
