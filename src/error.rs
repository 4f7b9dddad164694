use std::path::{Path, PathBuf};

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Every way `schema_fence` can refuse. Each variant maps to one Ruby exception class of the same
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

    /// A dictionary entry with a blank table name or an unusable `gitlab_schema`.
    #[error("{}:{}: table {table:?}: {problem}", path.display(), line.map_or("?".to_string(), |l| l.to_string()))]
    InvalidEntry {
        path: PathBuf,
        line: Option<usize>,
        table: String,
        problem: String,
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

    #[error("database error: {message}")]
    Database {
        message: String,
        sqlstate: Option<String>,
    },

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

    #[error("invalid {what}: {problem}")]
    InvalidArgument { what: String, problem: String },

    #[error("invalid {kind} name {name:?}: {problem}")]
    InvalidIdentifier {
        kind: &'static str,
        name: String,
        problem: String,
    },

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

    /// A connection could not be opened; `sslmode` is the mode in effect.
    #[error("cannot connect to PostgreSQL at {target} (sslmode={sslmode}): {message}")]
    Connection {
        target: String,
        sslmode: &'static str,
        message: String,
        sqlstate: Option<String>,
    },

    /// The call was interrupted (Thread#raise, Timeout, Ctrl-C, Sidekiq's shutdown): the running
    /// query was cancelled on the server and waits ended.
    #[error("interrupted: {what} was cancelled")]
    Interrupted { what: String },

    #[error("lost the connection to PostgreSQL: {message}")]
    ConnectionLost { message: String },

    #[error(
        "cutover step {step} timed out after {seconds}s waiting for {waiting_for}; the source stays \
         paused and nothing was split: fix the cause and run execute again (it resumes), or roll back"
    )]
    CutoverTimeout {
        step: String,
        seconds: f64,
        waiting_for: String,
    },

    #[error("cutover step {step} cannot run before step {missing} has finished; run execute, which runs them in order")]
    CutoverOrder { step: String, missing: String },

    #[error(
        "cutover {cutover} is past the promotion: the replica is a database of its own now, so the \
         pause cannot simply be undone; finish the cutover with execute"
    )]
    CutoverPastPromotion { cutover: String },

    #[error("cutover: {message}")]
    CutoverState { message: String },

    #[error(
        "cutover {cutover} cannot be rolled back after its promotion without losing writes: {reason}. \
         Finish it with execute instead, or undo it by hand knowing what the target took"
    )]
    CutoverNotReversible { cutover: String, reason: String },

    #[error(
        "cutover: the cutover cannot be made reversible, so nothing was changed: missing {}. Fix \
         them, or run it with reversible: false (REVERSIBLE=0) and accept that a rollback after \
         the promotion will be refused",
        missing.join("; ")
    )]
    CutoverRequirements { missing: Vec<String> },

    #[error(
        "cutover: the target given for {target} is not the right one, so nothing was changed on \
         either side: {}. Point the target at a streaming replica of the source",
        differences.join("; ")
    )]
    CutoverTarget {
        target: String,
        differences: Vec<String>,
    },

    #[error("cutover: cannot connect to the {database} database: {message}")]
    CutoverConnection { database: String, message: String },

    #[error(
        "cutover: the {database} database's URL ({url}) goes through a connection pooler: \
         {reason}. A cutover and a rollback need a direct connection to each server (pg_promote(), \
         the reverse replication's connection and the steps' waits must reach PostgreSQL itself): \
         give the server's own host and port; workers may keep the pooler"
    )]
    CutoverThroughPooler {
        database: String,
        url: String,
        reason: String,
    },

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

/// `Error::kind` and `Error::KINDS` from one list: the match is exhaustive, so a new variant
/// missing here fails to compile, and the binding resolves a Ruby class for every entry of
/// `KINDS` at load.
macro_rules! kinds {
    ($($variant:ident),* $(,)?) => {
        impl Error {
            /// Every variant's name, for the binding to resolve `SchemaFence::<kind>Error` once.
            pub const KINDS: &'static [&'static str] = &[$(stringify!($variant)),*];

            /// The variant's name: the binding appends `Error` to find the Ruby exception class.
            pub fn kind(&self) -> &'static str {
                match self {
                    $(Error::$variant { .. } => stringify!($variant)),*
                }
            }
        }
    };
}

kinds!(
    MalformedYaml,
    ConflictingSchema,
    UndefinedSchema,
    MissingKey,
    InvalidEntry,
    UnknownTable,
    SourceRead,
    UnrecognizedSource,
    Topology,
    UnknownDatabase,
    Database,
    IdentityMissing,
    IdentityConflict,
    InvalidArgument,
    InvalidIdentifier,
    MissingSchemaRestriction,
    InternalSchema,
    SchemaMismatch,
    UnresolvedRows,
    TableNotFound,
    ColumnNotFound,
    MisroutedConnection,
    EpochChanged,
    IdentityMismatch,
    JobConnectionMismatch,
    ConnectionLost,
    Connection,
    Interrupted,
    CutoverTimeout,
    CutoverOrder,
    CutoverPastPromotion,
    CutoverState,
    CutoverTarget,
    CutoverNotReversible,
    CutoverRequirements,
    CutoverConnection,
    CutoverThroughPooler,
    CrossDatabaseAccess,
    GuardParse,
    ForbiddenStatement,
);

impl Error {
    /// The SQLSTATE of the PostgreSQL error behind this one, read from the server's error.
    pub fn sqlstate(&self) -> Option<&str> {
        match self {
            Error::Database { sqlstate, .. } | Error::Connection { sqlstate, .. } => {
                sqlstate.as_deref()
            }
            _ => None,
        }
    }

    /// The table the error is about, when it is about one.
    pub fn table(&self) -> Option<&str> {
        match self {
            Error::ConflictingSchema { table, .. }
            | Error::UndefinedSchema { table, .. }
            | Error::InvalidEntry { table, .. }
            | Error::UnknownTable { table, .. }
            | Error::MissingSchemaRestriction { table }
            | Error::InternalSchema { table }
            | Error::SchemaMismatch { table, .. }
            | Error::TableNotFound { table }
            | Error::ColumnNotFound { table, .. }
            | Error::CrossDatabaseAccess { table, .. } => Some(table),
            _ => None,
        }
    }

    /// The `gitlab_schema` the error is about: the table's, when the dictionary knows it.
    pub fn gitlab_schema(&self) -> Option<&str> {
        match self {
            Error::UndefinedSchema { schema, .. } => Some(schema),
            Error::SchemaMismatch { table_schema, .. } => Some(table_schema),
            Error::CrossDatabaseAccess { table_schema, .. } => table_schema.as_deref(),
            _ => None,
        }
    }

    /// The logical database (main, ci, ...) the error is about.
    pub fn database(&self) -> Option<&str> {
        match self {
            Error::UnknownDatabase { name, .. } => Some(name),
            Error::MisroutedConnection { database, .. }
            | Error::IdentityMismatch { database, .. }
            | Error::EpochChanged { database, .. }
            | Error::JobConnectionMismatch { database, .. }
            | Error::CutoverConnection { database, .. }
            | Error::CutoverThroughPooler { database, .. } => Some(database),
            _ => None,
        }
    }

    /// PostgreSQL cancelled the statement for `statement_timeout` (SQLSTATE 57014).
    pub fn is_statement_timeout(&self) -> bool {
        matches!(self, Error::Database { sqlstate: Some(code), .. } if code == "57014")
    }

    pub(crate) fn read(path: &Path, source: std::io::Error) -> Self {
        Error::SourceRead {
            path: path.to_path_buf(),
            source,
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

fn describe_sources(sources: &[PathBuf]) -> String {
    if sources.is_empty() {
        return "an empty dictionary (no sources loaded)".to_string();
    }
    let list: Vec<String> = sources.iter().map(|p| p.display().to_string()).collect();
    list.join(", ")
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
        let mut kinds = Error::KINDS.to_vec();
        kinds.sort_unstable();
        kinds.dedup();
        assert_eq!(kinds.len(), Error::KINDS.len());
        let err = Error::TableNotFound { table: "x".into() };
        assert!(Error::KINDS.contains(&err.kind()));
        assert_eq!(err.table(), Some("x"));
    }

    #[test]
    fn sqlstate_comes_from_the_server_error() {
        let err = Error::Database {
            message: "canceling statement".into(),
            sqlstate: Some("57014".into()),
        };
        assert_eq!(err.sqlstate(), Some("57014"));
        assert!(err.is_statement_timeout());
    }
}
