//! Which physical database a connection reaches (docs/architecture.md section 8): a Ruby batch runs on an
//! ActiveRecord connection, not on the runner's own, so before the job runs the worker shows
//! that the job's connection reaches the database the batch was claimed on.
//!
//! A promoted replica keeps its source's `system_identifier` and database oid, so those alone
//! cannot tell main from ci after a split: the identity name and epoch are compared too.

use crate::error::{Error, Result, RunnerError};

/// What [`REACH`] reads on a connection: the identity and where it is stored.
pub const REACH: &str = "SELECT i.name, i.epoch, \
    (SELECT system_identifier FROM pg_control_system())::bigint, \
    (SELECT oid FROM pg_database WHERE datname = current_database())::bigint \
    FROM public.schema_fence_identity i WHERE i.singleton";

/// Where the physical database lives; fixed for a connection's whole life, so the runner reads it
/// once per connection.
pub const PLACE: &str = "SELECT (SELECT system_identifier FROM pg_control_system())::bigint, \
    (SELECT oid FROM pg_database WHERE datname = current_database())::bigint";

/// The physical database a connection reached: the identity stamped in it and the cluster and
/// database that hold it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Place {
    pub system_identifier: i64,
    pub database_oid: i64,
}

/// A connection's identity (name and epoch) in its place.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Reach {
    pub identity_name: String,
    pub epoch: i64,
    pub place: Place,
}

impl std::fmt::Display for Reach {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "the database stamped {:?} at epoch {} (system_identifier {}, database oid {})",
            self.identity_name, self.epoch, self.place.system_identifier, self.place.database_oid
        )
    }
}

/// Refuses a job connection that reaches anything but `claimed` (the reach of the claim).
pub fn check(database: &str, job_id: i64, claimed: &Reach, job: &Reach) -> Result<()> {
    if claimed == job {
        return Ok(());
    }
    Err(Error::Runner(RunnerError::JobConnectionMismatch {
        database: database.to_string(),
        job_id,
        claimed: claimed.to_string(),
        found: job.to_string(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reach(name: &str, epoch: i64, sysid: i64, oid: i64) -> Reach {
        Reach {
            identity_name: name.into(),
            epoch,
            place: Place {
                system_identifier: sysid,
                database_oid: oid,
            },
        }
    }

    #[test]
    fn accepts_the_database_of_the_claim() {
        let main = reach("main", 1, 7, 16384);
        assert!(check("main", 1, &main, &main.clone()).is_ok());
    }

    #[test]
    fn refuses_the_promoted_replica_that_shares_the_cluster_identifier() {
        // After a split both sides have the same system_identifier and oid: the name tells.
        let err = check(
            "main",
            9,
            &reach("main", 1, 7, 16384),
            &reach("ci", 1, 7, 16384),
        )
        .unwrap_err();
        let message = err.to_string();
        assert!(message.contains("batch 9"), "{message}");
        assert!(message.contains("stamped \"ci\""), "{message}");
        assert!(message.contains("stamped \"main\""), "{message}");
    }

    #[test]
    fn refuses_a_copy_in_another_cluster_or_database() {
        let main = reach("main", 1, 7, 16384);
        assert!(check("main", 1, &main, &reach("main", 1, 8, 16384)).is_err());
        assert!(check("main", 1, &main, &reach("main", 1, 7, 16999)).is_err());
    }

    #[test]
    fn refuses_a_connection_that_saw_another_epoch() {
        assert!(check("main", 1, &reach("main", 1, 7, 1), &reach("main", 2, 7, 1)).is_err());
    }
}
