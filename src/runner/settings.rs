//! A runner's settings as an application writes them (seconds as numbers, counts as integers),
//! checked once here so that every caller is refused the same values with the same message.

use super::RunnerOptions;
use crate::error::Result;
use crate::settings::{invalid, seconds, within};

/// What `SchemaFence::Runner.new` takes, by name; [`RunnerSettings::options`] checks it.
#[derive(Debug, Clone, PartialEq)]
pub struct RunnerSettings {
    pub lease_seconds: f64,
    pub max_attempts: i64,
    pub owner: Option<String>,
    pub fetch_limit: i64,
    pub stuck_after_seconds: f64,
    pub statement_timeout_seconds: f64,
    pub lock_timeout_seconds: f64,
    pub job_statement_timeout_seconds: f64,
    pub walk_ahead: bool,
}

impl Default for RunnerSettings {
    fn default() -> Self {
        let options = RunnerOptions::default();
        RunnerSettings {
            lease_seconds: options.lease.as_secs_f64(),
            max_attempts: i64::from(options.max_attempts),
            owner: None,
            fetch_limit: options.fetch_limit,
            stuck_after_seconds: options.stuck_after.as_secs_f64(),
            statement_timeout_seconds: options.statement_timeout.as_secs_f64(),
            lock_timeout_seconds: options.lock_timeout.as_secs_f64(),
            job_statement_timeout_seconds: options.job_statement_timeout.as_secs_f64(),
            walk_ahead: options.walk_ahead,
        }
    }
}

impl RunnerSettings {
    /// The options, or an [`Error::InvalidArgument`] naming the first setting out of range.
    pub fn options(self) -> Result<RunnerOptions> {
        let max_attempts = within("max_attempts", self.max_attempts, 1, 100)?;
        let fetch_limit = within("fetch_limit", self.fetch_limit, 1, 1000)?;
        Ok(RunnerOptions {
            lease: seconds("lease", self.lease_seconds)?,
            max_attempts: i16::try_from(max_attempts).expect("checked to be within 1..=100"),
            owner: match self.owner {
                Some(owner) if owner.trim().is_empty() => {
                    return Err(invalid("owner", "must not be blank".into()))
                }
                owner => owner,
            },
            fetch_limit,
            stuck_after: seconds("stuck_after", self.stuck_after_seconds)?,
            statement_timeout: seconds("statement_timeout", self.statement_timeout_seconds)?,
            lock_timeout: seconds("lock_timeout", self.lock_timeout_seconds)?,
            job_statement_timeout: seconds(
                "job_statement_timeout",
                self.job_statement_timeout_seconds,
            )?,
            walk_ahead: self.walk_ahead,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Error;

    #[test]
    fn the_defaults_are_the_runner_defaults() {
        let options = RunnerSettings::default().options().unwrap();
        let defaults = RunnerOptions::default();
        assert_eq!(options.lease, defaults.lease);
        assert_eq!(options.max_attempts, defaults.max_attempts);
        assert_eq!(options.fetch_limit, defaults.fetch_limit);
        assert_eq!(
            options.job_statement_timeout,
            defaults.job_statement_timeout
        );
    }

    #[test]
    fn a_setting_out_of_range_is_refused_by_name() {
        for (settings, named) in [
            (
                RunnerSettings {
                    lease_seconds: 0.0,
                    ..RunnerSettings::default()
                },
                "lease",
            ),
            (
                RunnerSettings {
                    lock_timeout_seconds: f64::NAN,
                    ..RunnerSettings::default()
                },
                "lock_timeout",
            ),
            (
                RunnerSettings {
                    max_attempts: 101,
                    ..RunnerSettings::default()
                },
                "max_attempts",
            ),
            (
                RunnerSettings {
                    fetch_limit: 0,
                    ..RunnerSettings::default()
                },
                "fetch_limit",
            ),
            (
                RunnerSettings {
                    owner: Some(" ".into()),
                    ..RunnerSettings::default()
                },
                "owner",
            ),
        ] {
            match settings.options() {
                Err(Error::InvalidArgument { what, .. }) => assert_eq!(what, named),
                other => panic!("{named}: expected InvalidArgument, got {other:?}"),
            }
        }
    }
}
