//! Health indicators (docs/architecture.md section 8, "Pace"): what the database says about running one more
//! batch now. Every built-in indicator reads the same row ([`reading::READ`]), so a check is one
//! round trip on the worker's connection; the verdict is cached per migration for a few seconds.
//! GitLab's `Gitlab::Database::HealthStatus` is the model: any indicator saying stop puts the
//! migration on hold (GitLab's ten minutes) with the reason recorded.

mod archive_backlog;
mod autovacuum;
mod long_transactions;
pub mod reading;
mod replication_lag;
mod settings;
mod wal_rate;
mod wal_receiver;

use std::time::Duration;

pub use reading::Reading;
pub use settings::{HealthSettings, OptimizerSettings};

/// Thresholds of the built-in indicators, and how the verdict is used. `None` turns one off.
#[derive(Debug, Clone, PartialEq)]
pub struct HealthOptions {
    /// Read the indicators before a claim at all.
    pub enabled: bool,
    /// How long one reading serves the claims of a migration.
    pub cache: Duration,
    /// How long a stop signal holds the migration (GitLab: 10 minutes).
    pub hold_for: Duration,
    /// Stop while a vacuum (autovacuum or manual) runs on the migration's table (GitLab's
    /// `AutovacuumActiveOnTable`).
    pub autovacuum: bool,
    /// Replay lag of any standby, in bytes (GitLab's load balancer: 8 MiB).
    pub max_replication_lag_bytes: Option<i64>,
    /// Replay lag of any standby (GitLab's load balancer: 60 s).
    pub max_replication_lag: Option<Duration>,
    /// WAL the primary wrote that a standby's WAL receiver has not yet written (GitLab's
    /// `WalReceiverSaturation`, read from the primary). The replay lag's limit by default, so a
    /// lag the receiver causes is named as such.
    pub max_wal_receiver_backlog_bytes: Option<i64>,
    /// WAL written per second between two readings.
    pub max_wal_rate_bytes: Option<f64>,
    /// Completed WAL segments not yet archived (GitLab's `WriteAheadLog`: 42).
    pub max_archive_backlog: Option<i64>,
    /// Age of the oldest transaction holding back the xmin horizon.
    pub max_transaction_age: Option<Duration>,
}

impl Default for HealthOptions {
    fn default() -> Self {
        HealthOptions {
            enabled: true,
            cache: Duration::from_secs(5),
            hold_for: Duration::from_mins(10),
            autovacuum: true,
            max_replication_lag_bytes: Some(8 * 1024 * 1024),
            max_replication_lag: Some(Duration::from_mins(1)),
            max_wal_receiver_backlog_bytes: Some(8 * 1024 * 1024),
            max_wal_rate_bytes: Some(100.0 * 1024.0 * 1024.0),
            max_archive_backlog: Some(42),
            max_transaction_age: Some(Duration::from_hours(1)),
        }
    }
}

/// An indicator saying stop, and why (the words status shows after "because").
#[derive(Debug, Clone, PartialEq)]
pub struct Signal {
    /// The indicator's name: `autovacuum`, `wal_receiver`, `replication_lag`, `wal_rate`, `archive_backlog`,
    /// `long_transaction`, or one the application added.
    pub indicator: String,
    pub reason: String,
}

impl Signal {
    pub(crate) fn new(indicator: &str, reason: String) -> Signal {
        Signal {
            indicator: indicator.to_string(),
            reason,
        }
    }
}

/// The WAL position seen by the last reading, for the rate between two readings.
#[derive(Debug, Clone, Copy, Default)]
pub struct WalSample {
    pub at: f64,
    pub lsn: f64,
    /// The last rate computed (readings too close together keep it).
    pub rate: Option<f64>,
}

/// The first indicator of `reading` that says stop. `wal` is updated with this reading.
pub fn evaluate(reading: &Reading, options: &HealthOptions, wal: &mut WalSample) -> Option<Signal> {
    let rate = wal_rate::rate(reading, wal);
    // The receiver before the replay lag: a standby behind because it does not receive the WAL is
    // also behind in replay, and the first says where the bottleneck is.
    autovacuum::evaluate(reading, options)
        .or_else(|| wal_receiver::evaluate(reading, options))
        .or_else(|| replication_lag::evaluate(reading, options))
        .or_else(|| wal_rate::evaluate(rate, options))
        .or_else(|| archive_backlog::evaluate(reading, options))
        .or_else(|| long_transactions::evaluate(reading, options))
}
