//! The store module's errors; `crate::error::Error` composes them.

/// The tracking tables and the identity: install, retag and enqueue refusals.
/// A variant's name is the Ruby exception class's, less `Error` (see `crate::error::Error::kind`).
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error(
        "this database has no schema_fence identity; run the schema_fence install (the \
         install migration, or SchemaFence::Install.up) on it first"
    )]
    IdentityMissing,

    #[error(
        "cannot install for database {wanted:?}: this database is stamped as {existing_name:?} \
         serving {}; the connection points at the wrong database",
        existing_serves.join(", ")
    )]
    IdentityConflict {
        wanted: String,
        existing_name: String,
        existing_serves: Vec<String>,
    },

    #[error(
        "cannot tag {} batched_background_migrations row(s) from their table_name: {}; add the \
         tables to the dictionary (or delete the rows) and run the upgrade again; nothing was changed",
        rows.len(),
        rows.iter().map(|(id, t)| format!("id {id} ({t})")).collect::<Vec<_>>().join(", ")
    )]
    UnresolvedRows { rows: Vec<(i64, String)> },

    #[error("table {table:?} does not exist in this database")]
    TableNotFound { table: String },

    #[error("table {table:?} has no column {column:?}")]
    ColumnNotFound { table: String, column: String },
}

crate::error::kinds!(StoreError: IdentityMissing, IdentityConflict, UnresolvedRows, TableNotFound, ColumnNotFound);

impl StoreError {
    /// The table the error is about, when it is about one.
    pub fn table(&self) -> Option<&str> {
        match self {
            StoreError::TableNotFound { table } | StoreError::ColumnNotFound { table, .. } => {
                Some(table)
            }
            _ => None,
        }
    }
}
