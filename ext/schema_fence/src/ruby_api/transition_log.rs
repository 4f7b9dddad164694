//! `SchemaFence::TransitionLog`: GitLab's job transition log, maintained and read by the core.

use magnus::{function, method, prelude::*, Error, RArray, RModule, Ruby, Value};
use schema_fence::store::jobs::JobStatus;
use schema_fence::store::transition_log;

use super::store::on_connection;

/// What one maintenance did: the partitions created and dropped, as `regclass` prints them.
#[magnus::wrap(
    class = "SchemaFence::TransitionLog::MaintainReport",
    free_immediately,
    size
)]
struct MaintainReport(transition_log::MaintainReport);

/// One logged status change of a batch.
#[magnus::wrap(class = "SchemaFence::TransitionLog::Row", free_immediately, size)]
struct Row(transition_log::Transition);

impl MaintainReport {
    fn created(&self) -> Vec<String> {
        self.0.created.clone()
    }
    fn dropped(&self) -> Vec<String> {
        self.0.dropped.clone()
    }
}

impl Row {
    fn migration_id(&self) -> i64 {
        self.0.migration_id
    }
    fn job_id(&self) -> i64 {
        self.0.job_id
    }
    fn previous_status(ruby: &Ruby, rb_self: &Self) -> Value {
        job_status(ruby, rb_self.0.previous_status)
    }
    fn next_status(ruby: &Ruby, rb_self: &Self) -> Value {
        job_status(ruby, rb_self.0.next_status)
    }
    fn exception_class(&self) -> Option<String> {
        self.0.exception_class.clone()
    }
    fn exception_message(&self) -> Option<String> {
        self.0.exception_message.clone()
    }
    fn created_at(&self) -> String {
        self.0.created_at.clone()
    }
}

fn maintain(ruby: &Ruby, conn: Value, retain_months: Option<i32>) -> Result<MaintainReport, Error> {
    on_connection(ruby, conn, |db| transition_log::maintain(db, retain_months)).map(MaintainReport)
}

/// A job status as GitLab names it (`:pending`, ...), or its code when GitLab has no such status.
fn job_status(ruby: &Ruby, code: i64) -> Value {
    match JobStatus::from_code(code) {
        Some(status) => ruby.to_symbol(status.name()).as_value(),
        None => ruby.integer_from_i64(code).as_value(),
    }
}

/// The transitions of each migration's latest jobs, newest first within each migration.
fn recent(ruby: &Ruby, conn: Value, migration_ids: Vec<i64>, limit: i32) -> Result<RArray, Error> {
    let transitions = on_connection(ruby, conn, |db| {
        transition_log::recent(db, &migration_ids, limit)
    })?;
    super::wrapped_list(ruby, transitions.into_iter().map(Row))
}

pub(crate) fn init(ruby: &Ruby, module: &RModule) -> Result<(), Error> {
    let log = module.define_module("TransitionLog")?;
    let report = log.define_class("MaintainReport", ruby.class_object())?;
    report.define_method("created", method!(MaintainReport::created, 0))?;
    report.define_method("dropped", method!(MaintainReport::dropped, 0))?;
    let row = log.define_class("Row", ruby.class_object())?;
    row.define_method("migration_id", method!(Row::migration_id, 0))?;
    row.define_method("job_id", method!(Row::job_id, 0))?;
    row.define_method("previous_status", method!(Row::previous_status, 0))?;
    row.define_method("next_status", method!(Row::next_status, 0))?;
    row.define_method("exception_class", method!(Row::exception_class, 0))?;
    row.define_method("exception_message", method!(Row::exception_message, 0))?;
    row.define_method("created_at", method!(Row::created_at, 0))?;
    log.define_singleton_method("_maintain", function!(maintain, 2))?;
    log.define_singleton_method("_recent", function!(recent, 3))?;
    Ok(())
}
