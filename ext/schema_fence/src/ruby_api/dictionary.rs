//! `SchemaFence::Dictionary`: table names to gitlab_schemas. Keyword arguments and path handling
//! live in `lib/schema_fence/dictionary.rb`.

use std::sync::Arc;

use magnus::{
    function, method,
    prelude::*,
    value::{Opaque, StaticSymbol},
    Error, RArray, RModule, RString, Ruby, Symbol, Value,
};

use super::{errors, gvl};

#[magnus::wrap(class = "SchemaFence::Dictionary", free_immediately, size)]
pub(crate) struct Dictionary {
    /// Shared with the guards made from this dictionary.
    pub(crate) inner: Arc<schema_fence::Dictionary>,
    /// One static Symbol per interned schema, so a lookup returns without creating a Symbol.
    symbols: Vec<Opaque<StaticSymbol>>,
}

impl Dictionary {
    fn load(ruby: &Ruby, paths: Vec<String>) -> Result<Self, Error> {
        let loaded = gvl::without_gvl(ruby, || schema_fence::Dictionary::load(&paths))?;
        let inner = loaded.map_err(|e| errors::to_ruby(ruby, e))?;
        let symbols = inner
            .schema_names()
            .iter()
            .map(|name| Opaque::from(ruby.sym_new(name.as_str())))
            .collect();
        Ok(Self {
            inner: Arc::new(inner),
            symbols,
        })
    }

    fn table_schema(
        ruby: &Ruby,
        rb_self: &Self,
        name: Value,
    ) -> Result<Option<StaticSymbol>, Error> {
        with_name(ruby, name, |name| {
            rb_self
                .inner
                .resolve(name)
                .map(|r| ruby.get_inner(rb_self.symbols[r.schema as usize]))
        })
    }

    fn table_schema_strict(
        ruby: &Ruby,
        rb_self: &Self,
        name: Value,
    ) -> Result<StaticSymbol, Error> {
        with_name(ruby, name, |name| match rb_self.inner.resolve(name) {
            Some(r) => Ok(ruby.get_inner(rb_self.symbols[r.schema as usize])),
            None => Err(rb_self.inner.table_schema_strict(name).unwrap_err()),
        })?
        .map_err(|e| errors::to_ruby(ruby, e))
    }

    /// `[schema, rule]` as Symbols, or nil: which rule of docs/architecture.md section 4 matched.
    fn resolve(ruby: &Ruby, rb_self: &Self, name: Value) -> Result<Option<RArray>, Error> {
        let found = with_name(ruby, name, |name| rb_self.inner.resolve(name))?;
        Ok(found.map(|r| {
            ruby.ary_new_from_values(&[
                ruby.get_inner(rb_self.symbols[r.schema as usize])
                    .as_value(),
                ruby.sym_new(r.rule.name()).as_value(),
            ])
        }))
    }

    fn tables(ruby: &Ruby, rb_self: &Self, schema: Value) -> Result<Vec<String>, Error> {
        with_name(ruby, schema, |schema| {
            rb_self
                .inner
                .tables(schema)
                .into_iter()
                .map(str::to_string)
                .collect()
        })
    }

    fn schemas(ruby: &Ruby, rb_self: &Self) -> RArray {
        super::symbols(ruby, rb_self.inner.schemas())
    }

    fn size(&self) -> usize {
        self.inner.len()
    }

    fn sources(&self) -> Vec<String> {
        self.inner
            .sources()
            .iter()
            .map(|p| p.display().to_string())
            .collect()
    }
}

/// Borrows a String's or Symbol's text for the length of `f`, without copying it.
fn with_name<R>(ruby: &Ruby, name: Value, f: impl FnOnce(&str) -> R) -> Result<R, Error> {
    if let Some(s) = RString::from_value(name) {
        // SAFETY: `f` does not call Ruby, so the string cannot be changed or freed meanwhile.
        let text = unsafe { s.as_str()? };
        return Ok(f(text));
    }
    if let Some(sym) = Symbol::from_value(name) {
        return Ok(f(&sym.name()?));
    }
    Err(Error::new(
        ruby.exception_type_error(),
        format!(
            "expected a table or schema name as a String or Symbol, got {}",
            unsafe { name.classname() }
        ),
    ))
}

pub(crate) fn init(ruby: &Ruby, module: &RModule) -> Result<(), Error> {
    let class = module.define_class("Dictionary", ruby.class_object())?;
    class.define_singleton_method("_load", function!(Dictionary::load, 1))?;
    class.define_method("table_schema", method!(Dictionary::table_schema, 1))?;
    class.define_method("table_schema!", method!(Dictionary::table_schema_strict, 1))?;
    class.define_method("resolve", method!(Dictionary::resolve, 1))?;
    class.define_method("tables", method!(Dictionary::tables, 1))?;
    class.define_method("schemas", method!(Dictionary::schemas, 0))?;
    class.define_method("size", method!(Dictionary::size, 0))?;
    class.define_method("sources", method!(Dictionary::sources, 0))?;
    Ok(())
}
