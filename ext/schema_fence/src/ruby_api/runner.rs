//! `SchemaFence::Runner` and `SchemaFence::Batch`: claiming, completing and failing batches on
//! the core's own connection, with the GVL released around every round trip. The worker loop,
//! Ruby jobs and the guard hook live in `lib/schema_fence/worker.rb`.

use magnus::{function, method, prelude::*, Error, RArray, RHash, RModule, Ruby, Value};
use schema_fence::runner::{self as core, Claim, Completion, Fence, RunnerSettings};
use std::sync::Mutex;

use super::options::Options;
use super::topology::Topology;
use super::{errors, gvl};

#[magnus::wrap(class = "SchemaFence::Runner", free_immediately, size)]
pub(crate) struct Runner {
    inner: Mutex<core::Runner>,
    /// Fired by Ruby's unblocking function; outside the lock, which the call holds.
    interrupt: schema_fence::interrupt::Interrupt,
}

#[magnus::wrap(class = "SchemaFence::Batch", free_immediately, size)]
pub(crate) struct Batch(core::Batch);

impl Runner {
    /// `settings` holds the keyword arguments of `SchemaFence::Runner.new` (seconds as numbers).
    fn new(
        ruby: &Ruby,
        url: String,
        database: String,
        topology: &Topology,
        settings: RHash,
    ) -> Result<Self, Error> {
        let defaults = RunnerSettings::default();
        let mut read = Options::new(ruby, settings, "Runner.new");
        let settings = RunnerSettings {
            lease_seconds: read.or("lease", defaults.lease_seconds)?,
            max_attempts: read.or("max_attempts", defaults.max_attempts)?,
            owner: read.get("owner")?,
            fetch_limit: read.or("fetch_limit", defaults.fetch_limit)?,
            stuck_after_seconds: read.or("stuck_after", defaults.stuck_after_seconds)?,
            statement_timeout_seconds: read
                .or("statement_timeout", defaults.statement_timeout_seconds)?,
            lock_timeout_seconds: read.or("lock_timeout", defaults.lock_timeout_seconds)?,
            job_statement_timeout_seconds: read.or(
                "job_statement_timeout",
                defaults.job_statement_timeout_seconds,
            )?,
            walk_ahead: read.or("walk_ahead", defaults.walk_ahead)?,
        };
        read.finish()?;
        let options = settings.options().map_err(|e| errors::to_ruby(ruby, e))?;
        let runner = core::Runner::new(&url, &database, topology.inner.clone(), options);
        Ok(Self {
            interrupt: runner.interrupt(),
            inner: Mutex::new(runner),
        })
    }

    /// Runs `work` on the runner without the GVL, mapping core errors to Ruby exceptions.
    fn with<T: Send>(
        ruby: &Ruby,
        rb_self: &Self,
        work: impl FnOnce(&mut core::Runner) -> schema_fence::Result<T> + Send,
    ) -> Result<T, Error> {
        let outcome = gvl::interruptible(ruby, &rb_self.interrupt, || {
            let mut runner = rb_self.inner.lock().unwrap_or_else(|p| p.into_inner());
            work(&mut runner)
        })?;
        outcome.map_err(|e| errors::to_ruby(ruby, e))
    }

    /// The core runner, locked (for calls that do not block).
    pub(super) fn core(&self) -> std::sync::MutexGuard<'_, core::Runner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn owner(&self) -> String {
        self.inner
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .owner()
            .to_string()
    }

    fn database(&self) -> String {
        self.inner
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .database()
            .to_string()
    }

    /// `[:work, allowed_schemas, epoch]` or `[:idle, owner]`; raises MisroutedConnectionError.
    fn fence(ruby: &Ruby, rb_self: &Self) -> Result<RArray, Error> {
        Ok(match Self::with(ruby, rb_self, |r| r.fence())? {
            Fence::Work { allowed, epoch } => ruby.ary_new_from_values(&[
                ruby.to_symbol("work").as_value(),
                super::symbols(ruby, &allowed).as_value(),
                ruby.integer_from_i64(epoch).as_value(),
            ]),
            Fence::Idle { owner } => ruby.ary_new_from_values(&[
                ruby.to_symbol("idle").as_value(),
                ruby.str_new(&owner).as_value(),
            ]),
        })
    }

    /// `[migration_ids, epoch]`: what a claim would consider now.
    fn fetch(ruby: &Ruby, rb_self: &Self) -> Result<(Vec<i64>, i64), Error> {
        Self::with(ruby, rb_self, |r| r.fetch())
    }

    fn claim_next(ruby: &Ruby, rb_self: &Self) -> Result<Value, Error> {
        let claim = Self::with(ruby, rb_self, |r| r.claim_next())?;
        Ok(claim_value(ruby, claim))
    }

    fn claim_migration(
        ruby: &Ruby,
        rb_self: &Self,
        id: i64,
        epoch: Option<i64>,
    ) -> Result<Value, Error> {
        let claim = Self::with(ruby, rb_self, |r| r.claim_migration(id, epoch))?;
        Ok(claim_value(ruby, claim))
    }

    fn claim_to_finalize(ruby: &Ruby, rb_self: &Self, id: i64) -> Result<Value, Error> {
        let claim = Self::with(ruby, rb_self, |r| r.claim_to_finalize(id))?;
        Ok(claim_value(ruby, claim))
    }

    fn complete(
        ruby: &Ruby,
        rb_self: &Self,
        batch: &Batch,
        metrics_json: String,
    ) -> Result<magnus::Symbol, Error> {
        let batch = batch.0.clone();
        let done = Self::with(ruby, rb_self, move |r| r.complete(&batch, &metrics_json))?;
        Ok(completion(ruby, done))
    }

    fn fail(
        ruby: &Ruby,
        rb_self: &Self,
        batch: &Batch,
        message: String,
        timed_out: bool,
    ) -> Result<magnus::Symbol, Error> {
        let batch = batch.0.clone();
        let done = Self::with(ruby, rb_self, move |r| r.fail(&batch, &message, timed_out))?;
        Ok(completion(ruby, done))
    }

    /// `[sub_batches, rows, millis]`.
    fn run_sql_batch(
        ruby: &Ruby,
        rb_self: &Self,
        batch: &Batch,
        statement: String,
    ) -> Result<(u32, u64, u64), Error> {
        let batch = batch.0.clone();
        let report = Self::with(ruby, rb_self, move |r| r.run_sql_batch(&batch, &statement))?;
        Ok((report.sub_batches, report.rows, report.millis as u64))
    }
}

/// What a job connection reads to show where it is (`[name, epoch, system_identifier, oid]`).
fn reach_sql() -> &'static str {
    core::reach::REACH
}

/// The fetch statement, for reviewing its plan (`EXPLAIN`).
fn fetch_sql() -> &'static str {
    core::sql::FETCH_WITH_IDENTITY
}

/// A Batch, or `:idle`, `:paused`, nil.
fn claim_value(ruby: &Ruby, claim: Claim) -> Value {
    match claim {
        Claim::Batch(batch) => ruby.obj_wrap(Batch(batch)).as_value(),
        Claim::Idle { .. } => ruby.to_symbol("idle").as_value(),
        Claim::Paused => ruby.to_symbol("paused").as_value(),
        Claim::Nothing => ruby.qnil().as_value(),
    }
}

fn completion(ruby: &Ruby, done: Completion) -> magnus::Symbol {
    ruby.to_symbol(match done {
        Completion::Recorded => "recorded",
        Completion::MigrationFinished => "migration_finished",
        Completion::MigrationFailed => "migration_failed",
        Completion::LeaseLost => "lease_lost",
    })
}

impl Batch {
    fn job_id(&self) -> i64 {
        self.0.job_id
    }
    fn migration_id(&self) -> i64 {
        self.0.migration_id
    }
    fn job_class_name(&self) -> String {
        self.0.job_class_name.clone()
    }
    fn table_name(&self) -> String {
        self.0.table_name.clone()
    }
    fn column_name(&self) -> String {
        self.0.column_name.clone()
    }
    fn job_arguments_json(&self) -> String {
        self.0.job_arguments.clone()
    }
    fn gitlab_schema(ruby: &Ruby, rb_self: &Self) -> magnus::Symbol {
        ruby.to_symbol(&rb_self.0.gitlab_schema)
    }
    fn min_value(&self) -> i64 {
        self.0.min_value
    }
    fn max_value(&self) -> i64 {
        self.0.max_value
    }
    fn cursor_columns(&self) -> Option<Vec<String>> {
        self.0.cursor.as_ref().map(|c| c.columns.clone())
    }
    fn min_cursor(&self) -> Option<Vec<i64>> {
        self.0.cursor.as_ref().map(|c| c.min.clone())
    }
    fn max_cursor(&self) -> Option<Vec<i64>> {
        self.0.cursor.as_ref().map(|c| c.max.clone())
    }
    fn batch_size(&self) -> i32 {
        self.0.batch_size
    }
    fn consecutive_sub_batches(&self) -> Option<Vec<(i64, i64)>> {
        self.0.consecutive_sub_batches()
    }
    fn sub_batch_size(&self) -> i32 {
        self.0.sub_batch_size
    }
    fn pause_ms(&self) -> i32 {
        self.0.pause_ms
    }
    fn attempts(&self) -> i16 {
        self.0.attempts
    }
    fn epoch(&self) -> i64 {
        self.0.epoch
    }

    /// Raises JobConnectionMismatchError unless the job connection's reach (the row of
    /// `Runner.reach_sql`) is the claim's.
    fn check_reach(
        ruby: &Ruby,
        rb_self: &Self,
        database: String,
        seen: (String, i64, i64, i64),
    ) -> Result<(), Error> {
        let (identity_name, epoch, system_identifier, database_oid) = seen;
        let job = core::Reach {
            identity_name,
            epoch,
            place: core::Place {
                system_identifier,
                database_oid,
            },
        };
        core::reach::check(&database, rb_self.0.job_id, &rb_self.0.reach, &job)
            .map_err(|e| errors::to_ruby(ruby, e))
    }
}

pub(crate) fn init(ruby: &Ruby, module: &RModule) -> Result<(), Error> {
    let runner = module.define_class("Runner", ruby.class_object())?;
    runner.define_singleton_method("_new", function!(Runner::new, 4))?;
    runner.define_singleton_method("fetch_sql", function!(fetch_sql, 0))?;
    runner.define_singleton_method("reach_sql", function!(reach_sql, 0))?;
    runner.define_method("owner", method!(Runner::owner, 0))?;
    runner.define_method("database", method!(Runner::database, 0))?;
    runner.define_method("fence", method!(Runner::fence, 0))?;
    runner.define_method("fetch", method!(Runner::fetch, 0))?;
    runner.define_method("claim_next", method!(Runner::claim_next, 0))?;
    runner.define_method("claim_migration", method!(Runner::claim_migration, 2))?;
    runner.define_method("claim_to_finalize", method!(Runner::claim_to_finalize, 1))?;
    runner.define_method("_complete", method!(Runner::complete, 2))?;
    runner.define_method("_fail", method!(Runner::fail, 3))?;
    runner.define_method("_run_sql_batch", method!(Runner::run_sql_batch, 2))?;
    super::pace::init(&runner)?;

    let batch = module.define_class("Batch", ruby.class_object())?;
    batch.define_method("job_id", method!(Batch::job_id, 0))?;
    batch.define_method("migration_id", method!(Batch::migration_id, 0))?;
    batch.define_method("job_class_name", method!(Batch::job_class_name, 0))?;
    batch.define_method("table_name", method!(Batch::table_name, 0))?;
    batch.define_method("column_name", method!(Batch::column_name, 0))?;
    batch.define_method("job_arguments_json", method!(Batch::job_arguments_json, 0))?;
    batch.define_method("gitlab_schema", method!(Batch::gitlab_schema, 0))?;
    batch.define_method("min_value", method!(Batch::min_value, 0))?;
    batch.define_method("max_value", method!(Batch::max_value, 0))?;
    batch.define_method("cursor_columns", method!(Batch::cursor_columns, 0))?;
    batch.define_method("min_cursor", method!(Batch::min_cursor, 0))?;
    batch.define_method("max_cursor", method!(Batch::max_cursor, 0))?;
    batch.define_method("batch_size", method!(Batch::batch_size, 0))?;
    batch.define_method(
        "consecutive_sub_batches",
        method!(Batch::consecutive_sub_batches, 0),
    )?;
    batch.define_method("sub_batch_size", method!(Batch::sub_batch_size, 0))?;
    batch.define_method("pause_ms", method!(Batch::pause_ms, 0))?;
    batch.define_method("attempts", method!(Batch::attempts, 0))?;
    batch.define_method("epoch", method!(Batch::epoch, 0))?;
    batch.define_method("_check_reach", method!(Batch::check_reach, 2))?;
    Ok(())
}
