//! The cutover module's errors; `crate::error::Error` composes them.

/// A cutover or rollback step refused or could not finish; each message says what to run next.
/// A variant's name is the Ruby exception class's, less `Error` (see `crate::error::Error::kind`).
#[derive(Debug, thiserror::Error)]
pub enum CutoverError {
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
}

crate::error::kinds!(CutoverError: CutoverTimeout, CutoverOrder, CutoverPastPromotion, CutoverState, CutoverNotReversible, CutoverRequirements, CutoverTarget, CutoverConnection, CutoverThroughPooler);

impl CutoverError {
    /// The logical database (main, ci, ...) the error is about.
    pub fn database(&self) -> Option<&str> {
        match self {
            CutoverError::CutoverConnection { database, .. }
            | CutoverError::CutoverThroughPooler { database, .. } => Some(database),
            _ => None,
        }
    }
}
