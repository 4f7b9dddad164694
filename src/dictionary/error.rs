//! The dictionary module's errors; `crate::error::Error` composes them.

use std::path::PathBuf;

/// The dictionary does not say, or says twice, which `gitlab_schema` a table has.
/// A variant's name is the Ruby exception class's, less `Error` (see `crate::error::Error::kind`).
#[derive(Debug, thiserror::Error)]
pub enum DictionaryError {
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

    /// A dictionary entry with a blank table name or an unusable `gitlab_schema`.
    #[error("{}:{}: table {table:?}: {problem}", path.display(), line.map_or("?".to_string(), |l| l.to_string()))]
    InvalidEntry {
        path: PathBuf,
        line: Option<usize>,
        table: String,
        problem: String,
    },

    #[error(
        "unknown table {table:?}: no gitlab_schema for it in {}; add it to the dictionary (a db/docs/{table}.yml file)",
        describe_sources(sources)
    )]
    UnknownTable {
        table: String,
        sources: Vec<PathBuf>,
    },

    #[error("{}: {message}", path.display())]
    UnrecognizedSource { path: PathBuf, message: String },
}

crate::error::kinds!(DictionaryError: ConflictingSchema, UndefinedSchema, InvalidEntry, UnknownTable, UnrecognizedSource);

impl DictionaryError {
    /// The table the error is about, when it is about one.
    pub fn table(&self) -> Option<&str> {
        match self {
            DictionaryError::ConflictingSchema { table, .. }
            | DictionaryError::UndefinedSchema { table, .. }
            | DictionaryError::InvalidEntry { table, .. }
            | DictionaryError::UnknownTable { table, .. } => Some(table),
            DictionaryError::UnrecognizedSource { .. } => None,
        }
    }

    /// The `gitlab_schema` the error is about: the table's, when the dictionary knows it.
    pub fn gitlab_schema(&self) -> Option<&str> {
        match self {
            DictionaryError::UndefinedSchema { schema, .. } => Some(schema),
            _ => None,
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
