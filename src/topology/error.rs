//! The topology module's errors; `crate::error::Error` composes them.

use std::path::PathBuf;

/// The topology (the logical databases and what each serves) is unusable, or names no such database.
/// A variant's name is the Ruby exception class's, less `Error` (see `crate::error::Error::kind`).
#[derive(Debug, thiserror::Error)]
pub enum TopologyError {
    #[error("{}: {message}", path.display())]
    Topology { path: PathBuf, message: String },

    #[error("unknown database {name:?}: the topology defines {}", known.join(", "))]
    UnknownDatabase { name: String, known: Vec<String> },
}

crate::error::kinds!(TopologyError: Topology, UnknownDatabase);

impl TopologyError {
    /// The logical database (main, ci, ...) the error is about.
    pub fn database(&self) -> Option<&str> {
        match self {
            TopologyError::UnknownDatabase { name, .. } => Some(name),
            TopologyError::Topology { .. } => None,
        }
    }
}
