//! `SchemaFence::Topology`: the app's databases and the gitlab_schemas each owns. The
//! `Database` value objects are built in `lib/schema_fence/topology.rb`.

use magnus::{function, method, prelude::*, Error, RArray, RModule, Ruby, Value};

use super::{errors, gvl};

#[magnus::wrap(class = "SchemaFence::Topology", free_immediately, size)]
pub(crate) struct Topology {
    pub(crate) inner: schema_fence::Topology,
}

impl Topology {
    fn load(ruby: &Ruby, dir: String) -> Result<Self, Error> {
        let loaded = gvl::without_gvl(ruby, || {
            schema_fence::Topology::load(std::path::Path::new(&dir))
        })?;
        let inner = loaded.map_err(|e| errors::to_ruby(ruby, e))?;
        Ok(Self { inner })
    }

    fn database_names(&self) -> Vec<String> {
        self.inner.names()
    }

    /// `[name, gitlab_schemas, lock_gitlab_schemas, fallback_database]`, or nil.
    fn database_fields(ruby: &Ruby, rb_self: &Self, name: String) -> Option<RArray> {
        let db = rb_self.inner.database(&name)?;
        let fallback: Value = match &db.fallback_database {
            Some(f) => ruby.str_new(f).as_value(),
            None => ruby.qnil().as_value(),
        };
        Some(ruby.ary_new_from_values(&[
            ruby.str_new(&db.name).as_value(),
            super::symbols(ruby, &db.gitlab_schemas).as_value(),
            super::symbols(ruby, &db.lock_gitlab_schemas).as_value(),
            fallback,
        ]))
    }

    fn allowed_schemas(ruby: &Ruby, rb_self: &Self, serves: Vec<String>) -> Result<RArray, Error> {
        let allowed = rb_self
            .inner
            .allowed_schemas(&serves)
            .map_err(|e| errors::to_ruby(ruby, e))?;
        Ok(super::symbols(ruby, &allowed))
    }

    fn served_with(&self, name: String) -> Vec<String> {
        self.inner.served_with(&name)
    }

    fn path(&self) -> String {
        self.inner.path().display().to_string()
    }
}

pub(crate) fn init(ruby: &Ruby, module: &RModule) -> Result<(), Error> {
    let class = module.define_class("Topology", ruby.class_object())?;
    class.define_singleton_method("_load", function!(Topology::load, 1))?;
    class.define_method("database_names", method!(Topology::database_names, 0))?;
    class.define_method("_database_fields", method!(Topology::database_fields, 1))?;
    class.define_method("_allowed_schemas", method!(Topology::allowed_schemas, 1))?;
    class.define_method("_served_with", method!(Topology::served_with, 1))?;
    class.define_method("path", method!(Topology::path, 0))?;
    Ok(())
}
