//! `SchemaFence::Store::IdentityRow` and `SchemaFence::Store::InstallReport`: a database's
//! identity and what the install did, with readers by name (`lib/schema_fence/identity.rb` and
//! `install.rb` build their Structs from them).

use magnus::{method, prelude::*, Error, RModule, Ruby};
use schema_fence::store;

#[magnus::wrap(class = "SchemaFence::Store::IdentityRow", free_immediately, size)]
pub(crate) struct IdentityRow(pub(crate) store::Identity);

#[magnus::wrap(class = "SchemaFence::Store::InstallReport", free_immediately, size)]
pub(crate) struct InstallReport(pub(crate) store::InstallReport);

impl IdentityRow {
    fn name(&self) -> String {
        self.0.name.clone()
    }
    fn serves(&self) -> Vec<String> {
        self.0.serves.clone()
    }
    fn epoch(&self) -> i64 {
        self.0.epoch
    }
    fn stamped_at(&self) -> String {
        self.0.stamped_at.clone()
    }
}

impl InstallReport {
    fn identity(&self) -> IdentityRow {
        IdentityRow(self.0.identity.clone())
    }
    fn backfilled(&self) -> usize {
        self.0.backfilled
    }
    /// Nil when the install had no dictionary to compare tags with.
    fn mistagged(&self) -> Option<usize> {
        self.0.mistagged
    }
}

pub(crate) fn init(ruby: &Ruby, store: &RModule) -> Result<(), Error> {
    let identity = store.define_class("IdentityRow", ruby.class_object())?;
    identity.define_method("name", method!(IdentityRow::name, 0))?;
    identity.define_method("serves", method!(IdentityRow::serves, 0))?;
    identity.define_method("epoch", method!(IdentityRow::epoch, 0))?;
    identity.define_method("stamped_at", method!(IdentityRow::stamped_at, 0))?;
    let report = store.define_class("InstallReport", ruby.class_object())?;
    report.define_method("identity", method!(InstallReport::identity, 0))?;
    report.define_method("backfilled", method!(InstallReport::backfilled, 0))?;
    report.define_method("mistagged", method!(InstallReport::mistagged, 0))?;
    Ok(())
}
