//! WAL receiver saturation: a standby whose WAL receiver (or its link) cannot take the WAL as fast
//! as the primary writes it falls behind before replay even starts, and each batch adds to it.
//! GitLab reads the receiver's saturation from Prometheus (`WalReceiverSaturation`, stop at an SLI
//! of 0.9); the primary sees the same symptom without Prometheus: WAL it has written that the
//! standby has not yet written to its own disk.

use super::{HealthOptions, Reading, Signal};

pub(super) fn evaluate(reading: &Reading, options: &HealthOptions) -> Option<Signal> {
    let (name, unwritten) = reading.receiver.as_ref()?;
    let (unwritten, max) = ((*unwritten)?, options.max_wal_receiver_backlog_bytes?);
    if unwritten <= max {
        return None;
    }
    Some(Signal::new(
        "wal_receiver",
        format!(
            "the WAL receiver of standby {name:?} has not written {unwritten} bytes of WAL the primary wrote (limit {max})"
        ),
    ))
}
