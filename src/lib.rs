//! `schema_fence` core: keeps batched background migrations on the database that owns their data.
//!
//! This crate knows nothing of Ruby; the binding crate in `ext/schema_fence` only converts values
//! and errors. See docs/architecture.md for the words used here (dictionary, topology, `gitlab_schema`, ...).
// Errors carry what a message needs (paths, names, lists); they are the cold path.
#![allow(clippy::result_large_err)]

pub mod batching;
pub mod connect;
pub mod cutover;
pub mod dictionary;
pub mod error;
pub mod guard;
pub mod health;
pub mod interrupt;
pub mod optimizer;
pub mod runner;
mod settings;
pub mod sql;
pub mod store;
pub mod tagging;
pub mod topology;
mod yaml;

pub use dictionary::{Dictionary, Resolution, Rule};
pub use error::{Error, Result};
pub use topology::{Database, Topology};

/// The `gitlab_schema` of PostgreSQL's own catalogs and Rails' bookkeeping tables.
pub const GITLAB_INTERNAL: &str = "gitlab_internal";
/// The `gitlab_schema` present on every database, with data per database.
pub const GITLAB_SHARED: &str = "gitlab_shared";
