use std::path::{Path, PathBuf};

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Every way schema_fence can refuse. Each variant maps to one Ruby exception class of the same
/// name plus `Error` (see `lib/schema_fence/errors.rb`), so messages say what, where and what to do.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{}:{line}:{column}: malformed YAML: {message}", path.display())]
    MalformedYaml {
        path: PathBuf,
        line: usize,
        column: usize,
        message: String,
    },

    #[error(
        "table {table:?} is given two gitlab_schemas: {first_schema} by {} and {second_schema} by {}; \
         keep one of them",
        first_path.display(),
        second_path.display()
    )]
    ConflictingSchema {
        table: String,
        first_schema: String,
        first_path: PathBuf,
        second_schema: String,
        second_path: PathBuf,
    },

    #[error(
        "{}: table {table:?} names gitlab_schema {schema:?}, which the schema definitions do not define \
         (defined: {}); add db/gitlab_schemas/{schema}.yaml or fix the table's gitlab_schema",
        path.display(),
        defined.join(", ")
    )]
    UndefinedSchema {
        table: String,
        schema: String,
        path: PathBuf,
        defined: Vec<String>,
    },

    #[error("{}: missing key `{key}`: {hint}", path.display())]
    MissingKey {
        path: PathBuf,
        key: &'static str,
        hint: &'static str,
    },

    #[error(
        "unknown table {table:?}: no gitlab_schema for it in {}; add it to the dictionary (a db/docs/{table}.yml file)",
        describe_sources(sources)
    )]
    UnknownTable {
        table: String,
        sources: Vec<PathBuf>,
    },

    #[error("{}: cannot read: {source}", path.display())]
    SourceRead {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error("{}: {message}", path.display())]
    UnrecognizedSource { path: PathBuf, message: String },

    #[error("{}: {message}", path.display())]
    Topology { path: PathBuf, message: String },

    #[error("unknown database {name:?}: the topology defines {}", known.join(", "))]
    UnknownDatabase { name: String, known: Vec<String> },
}

impl Error {
    /// The variant's name: the binding appends `Error` to find the Ruby exception class.
    pub fn kind(&self) -> &'static str {
        match self {
            Error::MalformedYaml { .. } => "MalformedYaml",
            Error::ConflictingSchema { .. } => "ConflictingSchema",
            Error::UndefinedSchema { .. } => "UndefinedSchema",
            Error::MissingKey { .. } => "MissingKey",
            Error::UnknownTable { .. } => "UnknownTable",
            Error::SourceRead { .. } => "SourceRead",
            Error::UnrecognizedSource { .. } => "UnrecognizedSource",
            Error::Topology { .. } => "Topology",
            Error::UnknownDatabase { .. } => "UnknownDatabase",
        }
    }

    pub(crate) fn read(path: &Path, source: std::io::Error) -> Self {
        Error::SourceRead {
            path: path.to_path_buf(),
            source,
        }
    }
}

fn describe_sources(sources: &[PathBuf]) -> String {
    if sources.is_empty() {
        return "an empty dictionary (no sources loaded)".to_string();
    }
    let list: Vec<String> = sources.iter().map(|p| p.display().to_string()).collect();
    list.join(", ")
}
