//! `SchemaFence::Cutover::CleanupRow` and `SchemaFence::Cutover::LogRow`: a stale migration the
//! cleanup found and a row of a database's cutover log, with readers by name
//! (`lib/schema_fence/cutover.rb` builds its Structs from them).

use magnus::{method, prelude::*, Error, RClass, Ruby};
use schema_fence::cutover as core;

#[magnus::wrap(class = "SchemaFence::Cutover::CleanupRow", free_immediately, size)]
pub(crate) struct CleanupRow(pub(crate) core::StaleRow);

#[magnus::wrap(class = "SchemaFence::Cutover::LogRow", free_immediately, size)]
pub(crate) struct LogRow(pub(crate) core::LogEntry);

impl CleanupRow {
    fn id(&self) -> i64 {
        self.0.id
    }
    fn job_class_name(&self) -> String {
        self.0.job_class_name.clone()
    }
    fn table_name(&self) -> String {
        self.0.table_name.clone()
    }
    fn gitlab_schema(&self) -> String {
        self.0.gitlab_schema.clone()
    }
    fn jobs(&self) -> i64 {
        self.0.jobs
    }
}

impl LogRow {
    fn cutover(&self) -> String {
        self.0.cutover.clone()
    }
    fn step(&self) -> String {
        self.0.step.clone()
    }
    fn database(&self) -> String {
        self.0.database.clone()
    }
    fn started_at(&self) -> String {
        self.0.started_at.clone()
    }
    fn finished_at(&self) -> Option<String> {
        self.0.finished_at.clone()
    }
    fn detail(&self) -> Option<String> {
        self.0.detail.clone()
    }
}

pub(crate) fn init(ruby: &Ruby, cutover: &RClass) -> Result<(), Error> {
    let row = cutover.define_class("CleanupRow", ruby.class_object())?;
    row.define_method("id", method!(CleanupRow::id, 0))?;
    row.define_method("job_class_name", method!(CleanupRow::job_class_name, 0))?;
    row.define_method("table_name", method!(CleanupRow::table_name, 0))?;
    row.define_method("gitlab_schema", method!(CleanupRow::gitlab_schema, 0))?;
    row.define_method("jobs", method!(CleanupRow::jobs, 0))?;
    let log = cutover.define_class("LogRow", ruby.class_object())?;
    log.define_method("cutover", method!(LogRow::cutover, 0))?;
    log.define_method("step", method!(LogRow::step, 0))?;
    log.define_method("database", method!(LogRow::database, 0))?;
    log.define_method("started_at", method!(LogRow::started_at, 0))?;
    log.define_method("finished_at", method!(LogRow::finished_at, 0))?;
    log.define_method("detail", method!(LogRow::detail, 0))?;
    Ok(())
}
