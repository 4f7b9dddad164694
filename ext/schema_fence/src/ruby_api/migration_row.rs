//! `SchemaFence::Store::MigrationRow`: one tracking row as the core read it, with readers by
//! name (`lib/schema_fence/migrations.rb` builds a `SchemaFence::Migration` from them).

use magnus::{method, prelude::*, Error, RModule, Ruby, Symbol};
use schema_fence::store;

#[magnus::wrap(class = "SchemaFence::Store::MigrationRow", free_immediately, size)]
pub(crate) struct MigrationRow(pub(crate) store::MigrationRow);

impl MigrationRow {
    fn id(&self) -> i64 {
        self.0.id
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
    /// JSON text: Ruby parses it, as it parses what it stores.
    fn job_arguments_json(&self) -> String {
        self.0.job_arguments.clone()
    }
    fn gitlab_schema(ruby: &Ruby, rb_self: &Self) -> Symbol {
        ruby.to_symbol(&rb_self.0.gitlab_schema)
    }
    fn status(ruby: &Ruby, rb_self: &Self) -> Symbol {
        ruby.to_symbol(rb_self.0.status.name())
    }
    fn progress(&self) -> f64 {
        self.0.progress()
    }
    fn min_value(&self) -> Option<i64> {
        self.0.min_value
    }
    fn max_value(&self) -> Option<i64> {
        self.0.max_value
    }
    fn min_cursor_json(&self) -> Option<String> {
        self.0.min_cursor.clone()
    }
    fn max_cursor_json(&self) -> Option<String> {
        self.0.max_cursor.clone()
    }
    fn batch_class_name(&self) -> String {
        self.0.batch_class_name.clone()
    }
    fn not_runnable(&self) -> Option<String> {
        self.0.not_runnable.clone()
    }
    fn batch_size(&self) -> i64 {
        self.0.batch_size
    }
    fn sub_batch_size(&self) -> i64 {
        self.0.sub_batch_size
    }
    fn interval(&self) -> i64 {
        self.0.interval_seconds
    }
    fn pause_ms(&self) -> i64 {
        self.0.pause_ms
    }
    fn jobs_succeeded(&self) -> i64 {
        self.0.jobs_succeeded
    }
    fn jobs_failed(&self) -> i64 {
        self.0.jobs_failed
    }
    fn created_at(&self) -> String {
        self.0.created_at.clone()
    }
    /// Why it is not running now (`:paused`, `:on_hold`, `:behind`, `:interval`, `:no_worker`,
    /// `:retry`), nil when it runs or has nothing to wait for.
    fn waiting(ruby: &Ruby, rb_self: &Self) -> Option<Symbol> {
        rb_self.0.waiting().map(|w| ruby.to_symbol(w.kind()))
    }
    /// The time it waits for, in seconds since the epoch.
    fn waiting_until(&self) -> Option<f64> {
        self.0.waiting().and_then(|w| w.until())
    }
    fn hold_reason(&self) -> Option<String> {
        self.0.schedule.hold_reason.clone()
    }
    fn behind(&self) -> Option<i64> {
        self.0.schedule.behind
    }
    fn retryable(&self) -> i64 {
        self.0.schedule.retryable
    }
    /// The database's clock when the row was read, in seconds since the epoch.
    fn clock(&self) -> f64 {
        self.0.schedule.now
    }
}

pub(crate) fn init(ruby: &Ruby, store: &RModule) -> Result<(), Error> {
    let class = store.define_class("MigrationRow", ruby.class_object())?;
    class.define_method("id", method!(MigrationRow::id, 0))?;
    class.define_method("job_class_name", method!(MigrationRow::job_class_name, 0))?;
    class.define_method("table_name", method!(MigrationRow::table_name, 0))?;
    class.define_method("column_name", method!(MigrationRow::column_name, 0))?;
    class.define_method(
        "job_arguments_json",
        method!(MigrationRow::job_arguments_json, 0),
    )?;
    class.define_method("gitlab_schema", method!(MigrationRow::gitlab_schema, 0))?;
    class.define_method("status", method!(MigrationRow::status, 0))?;
    class.define_method("progress", method!(MigrationRow::progress, 0))?;
    class.define_method("min_value", method!(MigrationRow::min_value, 0))?;
    class.define_method("max_value", method!(MigrationRow::max_value, 0))?;
    class.define_method("min_cursor_json", method!(MigrationRow::min_cursor_json, 0))?;
    class.define_method("max_cursor_json", method!(MigrationRow::max_cursor_json, 0))?;
    class.define_method(
        "batch_class_name",
        method!(MigrationRow::batch_class_name, 0),
    )?;
    class.define_method("not_runnable", method!(MigrationRow::not_runnable, 0))?;
    class.define_method("batch_size", method!(MigrationRow::batch_size, 0))?;
    class.define_method("sub_batch_size", method!(MigrationRow::sub_batch_size, 0))?;
    class.define_method("interval", method!(MigrationRow::interval, 0))?;
    class.define_method("pause_ms", method!(MigrationRow::pause_ms, 0))?;
    class.define_method("jobs_succeeded", method!(MigrationRow::jobs_succeeded, 0))?;
    class.define_method("jobs_failed", method!(MigrationRow::jobs_failed, 0))?;
    class.define_method("created_at", method!(MigrationRow::created_at, 0))?;
    class.define_method("waiting", method!(MigrationRow::waiting, 0))?;
    class.define_method("waiting_until", method!(MigrationRow::waiting_until, 0))?;
    class.define_method("hold_reason", method!(MigrationRow::hold_reason, 0))?;
    class.define_method("behind", method!(MigrationRow::behind, 0))?;
    class.define_method("retryable", method!(MigrationRow::retryable, 0))?;
    class.define_method("clock", method!(MigrationRow::clock, 0))?;
    Ok(())
}
