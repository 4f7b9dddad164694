//! The crate's error: each module's own enum, composed, plus the errors any module can meet
//! (the connection's, and arguments refused before anything is done).

use std::path::Path;

use postgres::error::SqlState;

pub use crate::cutover::CutoverError;
pub use crate::dictionary::DictionaryError;
pub use crate::guard::GuardError;
pub use crate::runner::RunnerError;
pub use crate::store::StoreError;
pub use crate::tagging::TaggingError;
pub use crate::topology::TopologyError;
pub use crate::yaml::YamlError;

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Every way `schema_fence` can refuse. Each leaf variant maps to one Ruby exception class of the
/// same name plus `Error` (see `lib/schema_fence/errors.rb`), so messages say what, where and what
/// to do; a module's enum keeps its own sources.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Yaml(#[from] YamlError),

    #[error(transparent)]
    Dictionary(#[from] DictionaryError),

    #[error(transparent)]
    Topology(#[from] TopologyError),

    #[error(transparent)]
    Store(#[from] StoreError),

    #[error(transparent)]
    Tagging(#[from] TaggingError),

    #[error(transparent)]
    Runner(#[from] RunnerError),

    #[error(transparent)]
    Cutover(#[from] CutoverError),

    #[error(transparent)]
    Guard(#[from] GuardError),

    /// A statement failed, or the server answered what it should not have. `source` is the
    /// PostgreSQL error, when there is one: its SQLSTATE is `code()`.
    #[error("database error: {message}")]
    Database {
        message: String,
        #[source]
        source: Option<postgres::Error>,
    },

    /// A connection could not be opened; `sslmode` is the mode in effect.
    #[error("cannot connect to PostgreSQL at {target} (sslmode={sslmode}): {message}")]
    Connection {
        target: String,
        sslmode: &'static str,
        message: String,
        #[source]
        source: Option<postgres::Error>,
    },

    #[error("lost the connection to PostgreSQL: {message}")]
    ConnectionLost { message: String },

    /// The call was interrupted (Thread#raise, Timeout, Ctrl-C, Sidekiq's shutdown): the running
    /// query was cancelled on the server and waits ended.
    #[error("interrupted: {what} was cancelled")]
    Interrupted { what: String },

    #[error("invalid {what}: {problem}")]
    InvalidArgument { what: String, problem: String },

    #[error("invalid {kind} name {name:?}: {problem}")]
    InvalidIdentifier {
        kind: &'static str,
        name: String,
        problem: String,
    },
}

/// `KINDS` and `kind()` for one module's enum from one list: the match is exhaustive, so a new
/// variant missing from the list fails to compile, and the binding resolves a Ruby class for every
/// entry of `Error::kinds()` at load.
macro_rules! kinds {
    ($ty:ident: $($variant:ident),* $(,)?) => {
        impl $ty {
            /// Every variant's name, for the binding to resolve `SchemaFence::<kind>Error` once.
            pub const KINDS: &'static [&'static str] = &[$(stringify!($variant)),*];

            /// The variant's name: the binding appends `Error` to find the Ruby exception class.
            pub fn kind(&self) -> &'static str {
                match self {
                    $($ty::$variant { .. } => stringify!($variant)),*
                }
            }
        }
    };
}
pub(crate) use kinds;

/// The errors of this file's own variants (not a module's).
const OWN_KINDS: &[&str] = &[
    "Database",
    "Connection",
    "ConnectionLost",
    "Interrupted",
    "InvalidArgument",
    "InvalidIdentifier",
];

impl Error {
    /// Every leaf variant's name, modules' and this enum's own: one Ruby class each.
    pub fn kinds() -> impl Iterator<Item = &'static str> {
        [
            YamlError::KINDS,
            DictionaryError::KINDS,
            TopologyError::KINDS,
            StoreError::KINDS,
            TaggingError::KINDS,
            RunnerError::KINDS,
            CutoverError::KINDS,
            GuardError::KINDS,
            OWN_KINDS,
        ]
        .into_iter()
        .flatten()
        .copied()
    }

    /// The leaf variant's name: the binding appends `Error` to find the Ruby exception class.
    pub fn kind(&self) -> &'static str {
        match self {
            Error::Yaml(e) => e.kind(),
            Error::Dictionary(e) => e.kind(),
            Error::Topology(e) => e.kind(),
            Error::Store(e) => e.kind(),
            Error::Tagging(e) => e.kind(),
            Error::Runner(e) => e.kind(),
            Error::Cutover(e) => e.kind(),
            Error::Guard(e) => e.kind(),
            Error::Database { .. } => "Database",
            Error::Connection { .. } => "Connection",
            Error::ConnectionLost { .. } => "ConnectionLost",
            Error::Interrupted { .. } => "Interrupted",
            Error::InvalidArgument { .. } => "InvalidArgument",
            Error::InvalidIdentifier { .. } => "InvalidIdentifier",
        }
    }

    /// The PostgreSQL error behind this one, when there is one.
    pub fn postgres(&self) -> Option<&postgres::Error> {
        match self {
            Error::Database { source, .. } | Error::Connection { source, .. } => source.as_ref(),
            _ => None,
        }
    }

    /// The SQLSTATE the server gave, read from its error (never matched as text).
    pub fn code(&self) -> Option<&SqlState> {
        self.postgres().and_then(postgres::Error::code)
    }

    /// The SQLSTATE's five characters, for Ruby's `sqlstate` reader.
    pub fn sqlstate(&self) -> Option<&str> {
        self.code().map(SqlState::code)
    }

    /// The table the error is about, when it is about one.
    pub fn table(&self) -> Option<&str> {
        match self {
            Error::Dictionary(e) => e.table(),
            Error::Tagging(e) => e.table(),
            Error::Store(e) => e.table(),
            Error::Guard(e) => e.table(),
            _ => None,
        }
    }

    /// The `gitlab_schema` the error is about: the table's, when the dictionary knows it.
    pub fn gitlab_schema(&self) -> Option<&str> {
        match self {
            Error::Dictionary(e) => e.gitlab_schema(),
            Error::Tagging(e) => e.gitlab_schema(),
            Error::Guard(e) => e.gitlab_schema(),
            _ => None,
        }
    }

    /// The logical database (main, ci, ...) the error is about.
    pub fn database(&self) -> Option<&str> {
        match self {
            Error::Topology(e) => e.database(),
            Error::Runner(e) => e.database(),
            Error::Cutover(e) => e.database(),
            _ => None,
        }
    }

    /// PostgreSQL cancelled the statement for `statement_timeout`.
    pub fn is_statement_timeout(&self) -> bool {
        self.code() == Some(&SqlState::QUERY_CANCELED)
    }

    /// The relation a statement named does not exist (a database without the install).
    pub fn is_undefined_table(&self) -> bool {
        self.code() == Some(&SqlState::UNDEFINED_TABLE)
    }

    /// A statement's answer was not what the code reads (no row, a malformed value), or the
    /// binding's connection failed in Ruby: no PostgreSQL error of this crate's behind it.
    pub fn unexpected(message: impl Into<String>) -> Self {
        Error::Database {
            message: message.into(),
            source: None,
        }
    }

    pub(crate) fn read(path: &Path, source: std::io::Error) -> Self {
        Error::Yaml(YamlError::SourceRead {
            path: path.to_path_buf(),
            source,
        })
    }
}

/// The server's own message (severity, text, detail, hint), or the error and its causes.
pub fn describe_pg_error(e: &postgres::Error) -> String {
    if let Some(db) = e.as_db_error() {
        let mut text = format!("{}: {}", db.severity(), db.message());
        if let Some(detail) = db.detail() {
            text.push_str(&format!(" (detail: {detail})"));
        }
        if let Some(hint) = db.hint() {
            text.push_str(&format!(" (hint: {hint})"));
        }
        return text;
    }
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(cause) = source {
        text.push_str(&format!(": {cause}"));
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_list_every_variant_once() {
        let mut kinds: Vec<&str> = Error::kinds().collect();
        let count = kinds.len();
        kinds.sort_unstable();
        kinds.dedup();
        assert_eq!(kinds.len(), count);
        let err = Error::Store(StoreError::TableNotFound { table: "x".into() });
        assert_eq!(err.kind(), "TableNotFound");
        assert!(Error::kinds().any(|k| k == err.kind()));
        assert_eq!(err.table(), Some("x"));
    }

    #[test]
    fn an_error_without_a_server_error_has_no_sqlstate() {
        let err = Error::unexpected("expected one row, got none");
        assert_eq!(err.sqlstate(), None);
        assert!(!err.is_statement_timeout());
    }
}
