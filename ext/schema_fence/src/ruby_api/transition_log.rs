//! `SchemaFence::TransitionLog`: GitLab's job transition log, maintained and read by the core.

use magnus::{function, prelude::*, Error, RArray, RModule, Ruby, Value};
use schema_fence::store::jobs::JobStatus;
use schema_fence::store::transition_log;

use super::store::on_connection;

/// `[created, dropped]`: the partitions created and dropped, as `regclass` prints them.
fn maintain(ruby: &Ruby, conn: Value, retain_months: Option<i32>) -> Result<RArray, Error> {
    let report = on_connection(ruby, conn, |db| transition_log::maintain(db, retain_months))?;
    Ok(ruby.ary_new_from_values(&[
        ruby.ary_from_vec(report.created).as_value(),
        ruby.ary_from_vec(report.dropped).as_value(),
    ]))
}

/// A job status as GitLab names it (`:pending`, ...), or its code when GitLab has no such status.
fn job_status(ruby: &Ruby, code: i64) -> Value {
    match JobStatus::from_code(code) {
        Some(status) => ruby.to_symbol(status.name()).as_value(),
        None => ruby.integer_from_i64(code).as_value(),
    }
}

/// One `[migration_id, job_id, previous_status, next_status, exception_class, exception_message,
/// created_at]` per transition, newest first within each migration.
fn recent(ruby: &Ruby, conn: Value, migration_ids: Vec<i64>, limit: i32) -> Result<RArray, Error> {
    let transitions = on_connection(ruby, conn, |db| {
        transition_log::recent(db, &migration_ids, limit)
    })?;
    let rows = ruby.ary_new_capa(transitions.len());
    for t in transitions {
        rows.push((
            t.migration_id,
            t.job_id,
            job_status(ruby, t.previous_status),
            job_status(ruby, t.next_status),
            t.exception_class,
            t.exception_message,
            t.created_at,
        ))?;
    }
    Ok(rows)
}

pub(crate) fn init(_ruby: &Ruby, module: &RModule) -> Result<(), Error> {
    let log = module.define_module("TransitionLog")?;
    log.define_singleton_method("_maintain", function!(maintain, 2))?;
    log.define_singleton_method("_recent", function!(recent, 3))?;
    Ok(())
}
