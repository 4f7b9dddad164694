//! Checks of the settings an application writes as numbers (seconds, counts), shared by the
//! runner's and the cutover's settings, so that each is refused with the same message whichever
//! binding passed it.

use std::time::Duration;

use crate::error::{Error, Result};

pub(crate) fn invalid(what: &str, problem: String) -> Error {
    Error::InvalidArgument {
        what: what.to_string(),
        problem,
    }
}

/// A positive, finite number of seconds as a Duration.
pub(crate) fn seconds(what: &str, value: f64) -> Result<Duration> {
    if value.is_finite() && value > 0.0 {
        Ok(Duration::from_secs_f64(value))
    } else {
        Err(invalid(
            what,
            format!("must be a positive number of seconds, got {value}"),
        ))
    }
}

/// `value`, when it lies within `low..=high`.
pub(crate) fn within(what: &str, value: i64, low: i64, high: i64) -> Result<i64> {
    if (low..=high).contains(&value) {
        Ok(value)
    } else {
        Err(invalid(
            what,
            format!("must be between {low} and {high}, got {value}"),
        ))
    }
}
