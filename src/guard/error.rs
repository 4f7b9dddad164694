//! The guard module's errors; `crate::error::Error` composes them.

/// The statement guard refused a statement before it was sent.
/// A variant's name is the Ruby exception class's, less `Error` (see `crate::error::Error::kind`).
#[derive(Debug, thiserror::Error)]
pub enum GuardError {
    /// The statement guard (docs/architecture.md section 9) refused a statement before it was sent.
    #[error("{}", crate::guard::refusal_message(table, table_schema.as_deref(), *written, allowed, tag, statement))]
    CrossDatabaseAccess {
        table: String,
        /// `None` when the dictionary does not know the table.
        table_schema: Option<String>,
        written: bool,
        // Boxed slices keep `Error` small (clippy's result_large_err).
        allowed: Box<[String]>,
        tag: String,
        statement: Box<str>,
    },

    /// The statement guard refused a statement that is not DML (a batch is DML).
    #[error(
        "statement not sent: a batch runs DML only, and this is {what}, which the statement guard \
         cannot see into or which changes how later statements are read; statement: {statement}"
    )]
    ForbiddenStatement { what: String, statement: String },

    #[error(
        "statement not sent: the statement guard cannot parse it (PostgreSQL's parser says: \
         {message}); statement: {statement}"
    )]
    GuardParse { message: String, statement: String },
}

crate::error::kinds!(GuardError: CrossDatabaseAccess, ForbiddenStatement, GuardParse);

impl GuardError {
    /// The table the error is about, when it is about one.
    pub fn table(&self) -> Option<&str> {
        match self {
            GuardError::CrossDatabaseAccess { table, .. } => Some(table),
            _ => None,
        }
    }

    /// The `gitlab_schema` the error is about: the table's, when the dictionary knows it.
    pub fn gitlab_schema(&self) -> Option<&str> {
        match self {
            GuardError::CrossDatabaseAccess { table_schema, .. } => table_schema.as_deref(),
            _ => None,
        }
    }
}
