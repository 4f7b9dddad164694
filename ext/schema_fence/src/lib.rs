//! The Ruby binding of schema_fence: conversions of values and errors only; the logic lives in
//! the core crate. One file per Ruby class under `ruby_api/`.
// Errors carry what a message needs (paths, names, lists); they are the cold path.
#![allow(clippy::result_large_err)]

mod ruby_api;

#[magnus::init(name = "schema_fence")]
fn init(ruby: &magnus::Ruby) -> Result<(), magnus::Error> {
    ruby_api::init(ruby)
}
