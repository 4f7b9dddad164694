//! A vacuum of the migration's table: a batch would compete with it for the same pages, and
//! autovacuum of a table being rewritten is what keeps it from bloating (GitLab's
//! `AutovacuumActiveOnTable`).

use super::{HealthOptions, Reading, Signal};

pub(super) fn evaluate(reading: &Reading, options: &HealthOptions) -> Option<Signal> {
    if !options.autovacuum {
        return None;
    }
    let (pid, phase, autovacuum) = reading.vacuum.as_ref()?;
    let who = if *autovacuum {
        "autovacuum"
    } else {
        "a VACUUM"
    };
    Some(Signal::new(
        "autovacuum",
        format!(
            "{who} is running on table {} (pid {pid}, phase {phase})",
            reading.table_name
        ),
    ))
}
