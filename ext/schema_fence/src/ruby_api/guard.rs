//! `SchemaFence::Guard`: the statement guard of docs/architecture.md section 9. Keyword arguments live in
//! `lib/schema_fence/guard.rb`. A check is a hash lookup, or one parse of a short statement, so
//! it keeps the GVL.

use std::sync::Arc;

use magnus::{
    function, gc, method, prelude::*, typed_data::Obj, value::Opaque, DataTypeFunctions, Error,
    RHash, RModule, RString, Ruby, TypedData,
};

use super::dictionary::Dictionary;
use super::errors;

#[derive(TypedData)]
#[magnus(class = "SchemaFence::Guard", free_immediately, mark, size)]
pub(crate) struct Guard {
    inner: schema_fence::guard::Guard<Arc<schema_fence::Dictionary>>,
    dictionary: Opaque<Obj<Dictionary>>,
}

impl DataTypeFunctions for Guard {
    fn mark(&self, marker: &gc::Marker) {
        marker.mark(self.dictionary);
    }
}

impl Guard {
    fn new(dictionary: Obj<Dictionary>, allowed: Vec<String>, tag: String) -> Self {
        Guard {
            inner: schema_fence::guard::Guard::new(dictionary.inner.clone(), allowed, tag),
            dictionary: dictionary.into(),
        }
    }

    fn check(ruby: &Ruby, rb_self: &Self, sql: RString) -> Result<(), Error> {
        // SAFETY: `check` does not call Ruby, so the string cannot change or be freed meanwhile.
        let text = unsafe { sql.as_str()? };
        rb_self
            .inner
            .check(text)
            .map_err(|e| errors::to_ruby(ruby, e))
    }

    /// `{read: [...], written: [...]}`: the tables the SQL reads and writes.
    fn tables(ruby: &Ruby, rb_self: &Self, sql: RString) -> Result<RHash, Error> {
        // SAFETY: as in `check`.
        let text = unsafe { sql.as_str()? };
        let tables = rb_self
            .inner
            .tables(text)
            .map_err(|e| errors::to_ruby(ruby, e))?;
        let hash = ruby.hash_new();
        hash.aset(ruby.to_symbol("read"), tables.read)?;
        hash.aset(ruby.to_symbol("written"), tables.written)?;
        Ok(hash)
    }

    fn allowed(ruby: &Ruby, rb_self: &Self) -> magnus::RArray {
        super::symbols(ruby, rb_self.inner.allowed())
    }

    fn tag(ruby: &Ruby, rb_self: &Self) -> magnus::Symbol {
        ruby.to_symbol(rb_self.inner.tag())
    }

    fn dictionary(ruby: &Ruby, rb_self: &Self) -> Obj<Dictionary> {
        ruby.get_inner(rb_self.dictionary)
    }

    fn cache_size(&self) -> usize {
        self.inner.cache_len()
    }

    fn shape_cache_size(&self) -> usize {
        self.inner.shapes_len()
    }
}

pub(crate) fn init(ruby: &Ruby, module: &RModule) -> Result<(), Error> {
    let class = module.define_class("Guard", ruby.class_object())?;
    class.define_singleton_method("_new", function!(Guard::new, 3))?;
    class.define_method("check", method!(Guard::check, 1))?;
    class.define_method("tables", method!(Guard::tables, 1))?;
    class.define_method("allowed", method!(Guard::allowed, 0))?;
    class.define_method("tag", method!(Guard::tag, 0))?;
    class.define_method("dictionary", method!(Guard::dictionary, 0))?;
    class.define_method("cache_size", method!(Guard::cache_size, 0))?;
    class.define_method("shape_cache_size", method!(Guard::shape_cache_size, 0))?;
    Ok(())
}
