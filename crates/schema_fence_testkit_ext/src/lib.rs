//! `SchemaFence::Cluster` for the RSpec suite, the benches and `bin/demo`: the testkit's
//! throwaway clusters, in a native library of their own that only `lib/schema_fence/testing.rb`
//! loads, so the shipped gem carries no cluster code.
// Errors carry what a message needs; they are the cold path.
#![allow(clippy::result_large_err)]

mod cluster;
mod errors;
mod gvl;

#[magnus::init(name = "schema_fence_testkit")]
fn init(ruby: &magnus::Ruby) -> Result<(), magnus::Error> {
    let module = ruby.define_module("SchemaFence")?;
    cluster::init(ruby, &module)
}
