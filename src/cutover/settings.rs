//! A cutover's settings as an application writes them (seconds as numbers), checked once here.

use super::{CutoverConfig, Promotion};
use crate::error::Result;
use crate::settings::seconds;

/// What `SchemaFence::Cutover.new` takes, by name; [`CutoverSettings::config`] checks it.
#[derive(Debug, Clone, PartialEq)]
pub struct CutoverSettings {
    pub source_url: String,
    pub target_url: String,
    pub source: String,
    pub target: String,
    /// `pg_promote()` on the replica; false: wait for an external promotion (Patroni).
    pub promote: bool,
    pub drain_timeout_seconds: f64,
    pub catch_up_timeout_seconds: f64,
    pub promote_timeout_seconds: f64,
    pub reversible: bool,
}

impl CutoverSettings {
    /// The settings of a cutover from `source_url` to `target_url` with the defaults of
    /// `SchemaFence::Cutover.new`.
    pub fn new(source_url: &str, target_url: &str) -> Self {
        CutoverSettings {
            source_url: source_url.to_string(),
            target_url: target_url.to_string(),
            source: "main".into(),
            target: "ci".into(),
            promote: true,
            drain_timeout_seconds: 60.0,
            catch_up_timeout_seconds: 60.0,
            promote_timeout_seconds: 60.0,
            reversible: true,
        }
    }

    /// The configuration, or an `InvalidArgument` naming the first timeout out of range.
    pub fn config(self) -> Result<CutoverConfig> {
        Ok(CutoverConfig {
            promotion: if self.promote {
                Promotion::PgPromote
            } else {
                Promotion::External
            },
            drain_timeout: seconds("drain_timeout", self.drain_timeout_seconds)?,
            catch_up_timeout: seconds("catch_up_timeout", self.catch_up_timeout_seconds)?,
            promote_timeout: seconds("promote_timeout", self.promote_timeout_seconds)?,
            source_url: self.source_url,
            target_url: self.target_url,
            source: self.source,
            target: self.target,
            reversible: self.reversible,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Error;

    #[test]
    fn a_timeout_that_is_not_positive_is_refused_by_name() {
        let settings = CutoverSettings {
            catch_up_timeout_seconds: -1.0,
            ..CutoverSettings::new("postgres://a/x", "postgres://b/x")
        };
        match settings.config() {
            Err(Error::InvalidArgument { what, .. }) => assert_eq!(what, "catch_up_timeout"),
            other => panic!("expected InvalidArgument, got {other:?}"),
        }
        let config = CutoverSettings::new("postgres://a/x", "postgres://b/x")
            .config()
            .unwrap();
        assert_eq!(config.promotion, Promotion::PgPromote);
        assert_eq!(config.drain_timeout.as_secs(), 60);
    }
}
