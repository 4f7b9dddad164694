//! WAL waiting for the archive: a failing or slow `archive_command` fills the WAL directory, and
//! a batch only adds to it (GitLab's `WriteAheadLog`, 42 segments).

use super::{HealthOptions, Reading, Signal};

pub(super) fn evaluate(reading: &Reading, options: &HealthOptions) -> Option<Signal> {
    let (backlog, max) = (reading.archive_backlog?, options.max_archive_backlog?);
    if backlog <= max {
        return None;
    }
    let last = reading.last_archived_wal.as_deref().unwrap_or("none");
    let failed = reading
        .last_failed_wal
        .as_deref()
        .map(|f| format!(", last failed {f}"))
        .unwrap_or_default();
    Some(Signal::new(
        "archive_backlog",
        format!("{backlog} WAL segments wait for the archive (limit {max}; last archived {last}{failed})"),
    ))
}
