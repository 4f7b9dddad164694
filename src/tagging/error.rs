//! The tagging module's errors; `crate::error::Error` composes them.

/// A migration cannot be tagged with the `gitlab_schema` its table and restriction give.
/// A variant's name is the Ruby exception class's, less `Error` (see `crate::error::Error::kind`).
#[derive(Debug, thiserror::Error)]
pub enum TaggingError {
    #[error(
        "cannot queue a batched background migration of {table:?} without a schema restriction: \
         declare `restrict_gitlab_migration gitlab_schema: :gitlab_<schema>` in the migration class"
    )]
    MissingSchemaRestriction { table: String },

    #[error(
        "table {table:?} is gitlab_internal (Rails or PostgreSQL bookkeeping): batched background \
         migrations cannot migrate it"
    )]
    InternalSchema { table: String },

    #[error(
        "table {table:?} is {table_schema}, but the migration is restricted to {restriction}; {hint}"
    )]
    SchemaMismatch {
        table: String,
        table_schema: String,
        restriction: String,
        hint: &'static str,
    },
}

crate::error::kinds!(TaggingError: MissingSchemaRestriction, InternalSchema, SchemaMismatch);

impl TaggingError {
    /// The table the error is about, when it is about one.
    pub fn table(&self) -> Option<&str> {
        match self {
            TaggingError::MissingSchemaRestriction { table }
            | TaggingError::InternalSchema { table }
            | TaggingError::SchemaMismatch { table, .. } => Some(table),
        }
    }

    /// The `gitlab_schema` the error is about: the table's, when the dictionary knows it.
    pub fn gitlab_schema(&self) -> Option<&str> {
        match self {
            TaggingError::SchemaMismatch { table_schema, .. } => Some(table_schema),
            _ => None,
        }
    }
}
