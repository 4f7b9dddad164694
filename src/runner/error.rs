//! The runner module's errors; `crate::error::Error` composes them.

/// The worker's fences: a fetch, claim or job refused because the database reached is not the one meant.
/// A variant's name is the Ruby exception class's, less `Error` (see `crate::error::Error::kind`).
#[derive(Debug, thiserror::Error)]
pub enum RunnerError {
    #[error(
        "connection for database {database:?} reached the database stamped {identity_name:?} ({}, \
         epoch {epoch}); it is mis-pointed: refusing to fetch or run anything. Point the {database} \
         connection at the {database} database",
        describe_serves(identity_serves)
    )]
    MisroutedConnection {
        database: String,
        identity_name: String,
        identity_serves: Vec<String>,
        epoch: i64,
    },

    #[error(
        "connection for database {database:?} reached a database whose identity ({identity_name:?}) \
         was stamped in another physical database (system_identifier {stamped_system_identifier}, \
         database oid {stamped_database_oid}) than the one it is in (system_identifier \
         {found_system_identifier}, database oid {found_database_oid}): it is a copy (a restore into \
         another cluster, or CREATE DATABASE ... TEMPLATE), so nothing is fetched or run. If the \
         copy is deliberate, adopt it: rake schema_fence:identity:adopt (SchemaFence::Identity.adopt)"
    )]
    IdentityMismatch {
        database: String,
        identity_name: String,
        stamped_system_identifier: i64,
        stamped_database_oid: i64,
        found_system_identifier: i64,
        found_database_oid: i64,
    },

    #[error(
        "the identity epoch of database {database:?} changed from {expected} to {found} since the fetch \
         (a cutover happened): the claim is refused; fetch again"
    )]
    EpochChanged {
        database: String,
        expected: i64,
        found: i64,
    },

    #[error(
        "batch {job_id} of database {database:?} was claimed on {claimed}, but the connection its Ruby \
         job would run on reaches {found}: the job was not run and the batch is recorded as failed. \
         Point the connection_class or url configured for database {database} at the database it \
         names"
    )]
    JobConnectionMismatch {
        database: String,
        job_id: i64,
        claimed: String,
        found: String,
    },
}

crate::error::kinds!(RunnerError: MisroutedConnection, IdentityMismatch, EpochChanged, JobConnectionMismatch);

impl RunnerError {
    /// The logical database (main, ci, ...) the error is about.
    pub fn database(&self) -> Option<&str> {
        match self {
            RunnerError::MisroutedConnection { database, .. }
            | RunnerError::IdentityMismatch { database, .. }
            | RunnerError::EpochChanged { database, .. }
            | RunnerError::JobConnectionMismatch { database, .. } => Some(database),
        }
    }
}

fn describe_serves(serves: &[String]) -> String {
    if serves.is_empty() {
        return "serving nothing: it is retired, the target of a cutover that was rolled back"
            .into();
    }
    format!("serving {}", serves.join(", "))
}
