//! The health check's and the optimizer's settings as an application writes them (seconds as
//! numbers, nil for an indicator that is off), checked once here.

use std::time::Duration;

use super::HealthOptions;
use crate::error::Result;
use crate::optimizer::OptimizerOptions;
use crate::settings::invalid;

/// What `SchemaFence.configure { |c| c.health = ... }` gives, by name. For the thresholds
/// (`max_*`) `None` turns the indicator off; for the others it keeps the default.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct HealthSettings {
    pub enabled: Option<bool>,
    pub cache_seconds: Option<f64>,
    pub hold_for_seconds: Option<f64>,
    pub autovacuum: Option<bool>,
    pub max_replication_lag_bytes: Option<i64>,
    pub max_replication_lag_seconds: Option<f64>,
    pub max_wal_receiver_backlog_bytes: Option<i64>,
    pub max_wal_rate_bytes: Option<f64>,
    pub max_archive_backlog: Option<i64>,
    pub max_transaction_age_seconds: Option<f64>,
}

/// The optimizer's settings by name; `None` keeps GitLab's default.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct OptimizerSettings {
    pub enabled: Option<bool>,
    pub min_batch_size: Option<i32>,
    pub max_batch_size: Option<i32>,
}

fn seconds(what: &str, value: Option<f64>) -> Result<Option<Duration>> {
    match value {
        None => Ok(None),
        Some(s) if s.is_finite() && s >= 0.0 => Ok(Some(Duration::from_secs_f64(s))),
        Some(s) => Err(invalid(what, format!("must be seconds >= 0, got {s}"))),
    }
}

fn positive<T: PartialOrd + Default + std::fmt::Display>(
    what: &str,
    value: Option<T>,
) -> Result<Option<T>> {
    match value {
        Some(v) if v <= T::default() => Err(invalid(what, format!("must be positive, got {v}"))),
        other => Ok(other),
    }
}

impl HealthSettings {
    /// The options, or an `InvalidArgument` naming the first setting out of range.
    pub fn options(self) -> Result<HealthOptions> {
        let defaults = HealthOptions::default();
        Ok(HealthOptions {
            enabled: self.enabled.unwrap_or(defaults.enabled),
            cache: seconds("cache", self.cache_seconds)?.unwrap_or(defaults.cache),
            hold_for: seconds("hold_for", self.hold_for_seconds)?.unwrap_or(defaults.hold_for),
            autovacuum: self.autovacuum.unwrap_or(defaults.autovacuum),
            max_replication_lag_bytes: positive(
                "max_replication_lag_bytes",
                self.max_replication_lag_bytes,
            )?,
            max_replication_lag: seconds("max_replication_lag", self.max_replication_lag_seconds)?,
            max_wal_receiver_backlog_bytes: positive(
                "max_wal_receiver_backlog_bytes",
                self.max_wal_receiver_backlog_bytes,
            )?,
            max_wal_rate_bytes: positive("max_wal_rate_bytes", self.max_wal_rate_bytes)?,
            max_archive_backlog: positive("max_archive_backlog", self.max_archive_backlog)?,
            max_transaction_age: seconds("max_transaction_age", self.max_transaction_age_seconds)?,
        })
    }
}

impl OptimizerSettings {
    /// The options, or an `InvalidArgument` for a bound that is not positive or bounds crossed.
    pub fn options(self) -> Result<OptimizerOptions> {
        let defaults = OptimizerOptions::default();
        let options = OptimizerOptions {
            enabled: self.enabled.unwrap_or(defaults.enabled),
            min_batch_size: positive("min_batch_size", self.min_batch_size)?
                .unwrap_or(defaults.min_batch_size),
            max_batch_size: positive("max_batch_size", self.max_batch_size)?
                .unwrap_or(defaults.max_batch_size),
            ..defaults
        };
        if options.min_batch_size > options.max_batch_size {
            return Err(invalid(
                "min_batch_size",
                format!(
                    "{} is above max_batch_size {}",
                    options.min_batch_size, options.max_batch_size
                ),
            ));
        }
        Ok(options)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Error;

    fn refused(result: Result<impl std::fmt::Debug>) -> String {
        match result {
            Err(Error::InvalidArgument { what, .. }) => what,
            other => panic!("expected InvalidArgument, got {other:?}"),
        }
    }

    #[test]
    fn a_threshold_left_out_is_off_and_a_bad_one_is_refused_by_name() {
        let options = HealthSettings::default().options().unwrap();
        assert_eq!(options.max_replication_lag, None);
        assert_eq!(options.cache, HealthOptions::default().cache);
        let negative = HealthSettings {
            max_transaction_age_seconds: Some(-1.0),
            ..HealthSettings::default()
        };
        assert_eq!(refused(negative.options()), "max_transaction_age");
        let zero = HealthSettings {
            max_archive_backlog: Some(0),
            ..HealthSettings::default()
        };
        assert_eq!(refused(zero.options()), "max_archive_backlog");
    }

    #[test]
    fn crossed_batch_size_bounds_are_refused() {
        let crossed = OptimizerSettings {
            min_batch_size: Some(5_000),
            max_batch_size: Some(2_000),
            ..OptimizerSettings::default()
        };
        assert_eq!(refused(crossed.options()), "min_batch_size");
    }
}
