//! Standby replay lag: every batch adds WAL a lagging standby must replay before its readers see
//! fresh data (GitLab's load balancer stops reading from one 8 MiB or 60 s behind).

use super::{HealthOptions, Reading, Signal};

pub(super) fn evaluate(reading: &Reading, options: &HealthOptions) -> Option<Signal> {
    let (name, bytes, seconds) = reading.standby.as_ref()?;
    if let (Some(bytes), Some(max)) = (bytes, options.max_replication_lag_bytes) {
        if *bytes > max {
            return Some(Signal::new(
                "replication_lag",
                format!("standby {name:?} is {bytes} bytes of WAL behind (limit {max})"),
            ));
        }
    }
    if let (Some(seconds), Some(max)) = (seconds, options.max_replication_lag) {
        if *seconds > max.as_secs_f64() {
            return Some(Signal::new(
                "replication_lag",
                format!(
                    "standby {name:?} replays {seconds:.1} s behind (limit {} s)",
                    max.as_secs_f64()
                ),
            ));
        }
    }
    None
}
