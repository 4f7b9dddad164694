//! The testkit's errors as `SchemaFence::ClusterError` (defined by lib/schema_fence/testing.rb).

use magnus::{prelude::*, Error, ExceptionClass, RModule, Ruby};

pub(crate) fn to_ruby(ruby: &Ruby, err: schema_fence_testkit::Error) -> Error {
    raise(ruby, "ClusterError", err.to_string())
}

/// Raises `SchemaFence::<class_name>`, or RuntimeError if testing.rb has not defined it, so the
/// message is never lost.
pub(crate) fn raise(ruby: &Ruby, class_name: &str, message: String) -> Error {
    let class = ruby
        .class_object()
        .const_get::<_, RModule>("SchemaFence")
        .and_then(|m| m.const_get::<_, ExceptionClass>(class_name))
        .unwrap_or_else(|_| ruby.exception_runtime_error());
    Error::new(class, message)
}
