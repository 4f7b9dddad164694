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
        (promote, drain, catch_up, promote_timeout): (bool, f64, f64, f64),
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

    fn rollback(ruby: &Ruby, rb_self: &Self) -> Result<(), Error> {
        Self::on(ruby, rb_self, |c| c.rollback())
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

pub(crate) fn init(ruby: &Ruby, module: &RModule) -> Result<(), Error> {
    let class = module.define_class("Cutover", ruby.class_object())?;
    class.define_singleton_method("_new", function!(Cutover::new, 4))?;
    class.define_singleton_method("steps", function!(Cutover::steps, 0))?;
    class.define_singleton_method("_cleanup", function!(cleanup, 3))?;
    class.define_singleton_method("_unlock_writes", function!(unlock_writes, 1))?;
    class.define_method("_plan", method!(Cutover::plan, 0))?;
    class.define_method("_run_step", method!(Cutover::run_step, 1))?;
    class.define_method("rollback", method!(Cutover::rollback, 0))?;
    Ok(())
}
