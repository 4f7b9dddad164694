mod cutover;
mod cutover_rows;
mod dictionary;
pub(crate) mod errors;
mod guard;
pub(crate) mod gvl;
mod identity_row;
mod migration_row;
mod options;
mod pace;
mod report;
mod runner;
mod store;
mod topology;
mod transition_log;

use magnus::{Error, RArray, Ruby};

pub(crate) fn init(ruby: &Ruby) -> Result<(), Error> {
    let module = ruby.define_module("SchemaFence")?;
    errors::init(ruby, &module)?;
    dictionary::init(ruby, &module)?;
    topology::init(ruby, &module)?;
    store::init(ruby, &module)?;
    runner::init(ruby, &module)?;
    cutover::init(ruby, &module)?;
    guard::init(ruby, &module)?;
    transition_log::init(ruby, &module)?;
    Ok(())
}

/// Wrapped objects as an Array (magnus converts a `Vec` of plain values, not of wrapped ones).
pub(crate) fn wrapped_list<T: magnus::TypedData>(
    ruby: &Ruby,
    items: impl ExactSizeIterator<Item = T>,
) -> Result<RArray, Error> {
    let list = ruby.ary_new_capa(items.len());
    for item in items {
        list.push(ruby.obj_wrap(item))?;
    }
    Ok(list)
}

/// Names as an Array of Symbols, the form gitlab_schemas take in Ruby.
pub(crate) fn symbols<S: AsRef<str>>(ruby: &Ruby, names: impl IntoIterator<Item = S>) -> RArray {
    let array = ruby.ary_new();
    for name in names {
        // Pushing onto a fresh Array cannot fail short of memory exhaustion, which Ruby raises itself.
        let _ = array.push(ruby.to_symbol(name.as_ref()));
    }
    array
}
