//! Core errors become instances of the Ruby class of the same name (`lib/schema_fence/errors.rb`),
//! looked up when raised so the Ruby side owns the hierarchy.

use magnus::{prelude::*, Error, ExceptionClass, RModule, Ruby};

pub(crate) fn to_ruby(ruby: &Ruby, err: schema_fence::Error) -> Error {
    raise(ruby, &format!("{}Error", err.kind()), err.to_string())
}

/// Raises `SchemaFence::<class_name>`, falling back to `SchemaFence::Error`, then RuntimeError,
/// so a missing Ruby class never hides the message.
pub(crate) fn raise(ruby: &Ruby, class_name: &str, message: String) -> Error {
    let class = ruby
        .class_object()
        .const_get::<_, RModule>("SchemaFence")
        .and_then(|m| {
            m.const_get::<_, ExceptionClass>(class_name)
                .or_else(|_| m.const_get::<_, ExceptionClass>("Error"))
        })
        .unwrap_or_else(|_| ruby.exception_runtime_error());
    Error::new(class, message)
}
