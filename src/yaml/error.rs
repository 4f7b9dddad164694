//! The yaml module's errors; `crate::error::Error` composes them.

use std::path::PathBuf;

/// The YAML files (the dictionary's and the topology's) could not be read, or lack what they must say.
/// A variant's name is the Ruby exception class's, less `Error` (see `crate::error::Error::kind`).
#[derive(Debug, thiserror::Error)]
pub enum YamlError {
    #[error("{}:{line}:{column}: malformed YAML: {message}", path.display())]
    MalformedYaml {
        path: PathBuf,
        line: usize,
        column: usize,
        message: String,
    },

    #[error("{}: missing key `{key}`: {hint}", path.display())]
    MissingKey {
        path: PathBuf,
        key: &'static str,
        hint: &'static str,
    },

    #[error("{}: cannot read: {source}", path.display())]
    SourceRead {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

crate::error::kinds!(YamlError: MalformedYaml, MissingKey, SourceRead);
