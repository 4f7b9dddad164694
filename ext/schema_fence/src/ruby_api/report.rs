//! `SchemaFence::Store::Report` and `SchemaFence::Store::ReportRow`: the core's status report of
//! one database, with readers (`lib/schema_fence/status.rb` formats it).

use magnus::{method, prelude::*, Error, RArray, RModule, Ruby};
use schema_fence::store::report;

use super::identity_row::IdentityRow;
use super::migration_row::MigrationRow;

#[magnus::wrap(class = "SchemaFence::Store::Report", free_immediately, size)]
pub(crate) struct Report(pub(crate) report::Report);

#[magnus::wrap(class = "SchemaFence::Store::ReportRow", free_immediately, size)]
pub(crate) struct ReportRow(report::ReportRow);

impl Report {
    fn identity(&self) -> Option<IdentityRow> {
        self.0.identity.clone().map(IdentityRow)
    }
    fn claims_paused(&self) -> bool {
        self.0.claims_paused
    }
    fn migrations(ruby: &Ruby, rb_self: &Self) -> Result<RArray, Error> {
        let list = ruby.ary_new_capa(rb_self.0.migrations.len());
        for row in &rb_self.0.migrations {
            list.push(ruby.obj_wrap(ReportRow(row.clone())))?;
        }
        Ok(list)
    }
}

impl ReportRow {
    fn row(&self) -> MigrationRow {
        MigrationRow(self.0.row.clone())
    }
    fn stale(&self) -> bool {
        self.0.stale
    }
    fn rate(&self) -> Option<f64> {
        self.0.rate
    }
    fn eta(&self) -> Option<i64> {
        self.0.eta_seconds
    }
    fn last_error(&self) -> Option<String> {
        self.0.last_error.clone()
    }
}

pub(crate) fn init(ruby: &Ruby, store: &RModule) -> Result<(), Error> {
    let class = store.define_class("Report", ruby.class_object())?;
    class.define_method("identity", method!(Report::identity, 0))?;
    class.define_method("claims_paused", method!(Report::claims_paused, 0))?;
    class.define_method("migrations", method!(Report::migrations, 0))?;
    let row = store.define_class("ReportRow", ruby.class_object())?;
    row.define_method("row", method!(ReportRow::row, 0))?;
    row.define_method("stale", method!(ReportRow::stale, 0))?;
    row.define_method("rate", method!(ReportRow::rate, 0))?;
    row.define_method("eta", method!(ReportRow::eta, 0))?;
    row.define_method("last_error", method!(ReportRow::last_error, 0))?;
    Ok(())
}
