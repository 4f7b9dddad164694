//! Identity fencing (docs/architecture.md section 7): a worker for database D proves it reached D.

use super::reach::Place;
use crate::error::{Error, Result, RunnerError};
use crate::store::Identity;
use crate::topology::Topology;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fence {
    /// The database is D's own: work on the migrations of these `gitlab_schemas`.
    Work { allowed: Vec<String>, epoch: i64 },
    /// D shares this database with its owner (before the split): the owner's worker covers D.
    Idle { owner: String },
}

/// Decides what a worker configured for `database` may do on the database whose identity it read.
pub fn fence(identity: &Identity, database: &str, topology: &Topology) -> Result<Fence> {
    // A retired database (serving nothing) refuses even the worker of its own name.
    if identity.name == database && !identity.serves.is_empty() {
        return Ok(Fence::Work {
            allowed: topology.allowed_schemas(&identity.serves)?,
            epoch: identity.epoch,
        });
    }
    if identity.serves.iter().any(|s| s == database) {
        return Ok(Fence::Idle {
            owner: identity.name.clone(),
        });
    }
    Err(Error::Runner(RunnerError::MisroutedConnection {
        database: database.to_string(),
        identity_name: identity.name.clone(),
        identity_serves: identity.serves.clone(),
        epoch: identity.epoch,
    }))
}

/// Refuses an identity stamped in another physical database than the one reached: a copy (a
/// restore into another cluster, `CREATE DATABASE ... TEMPLATE`). A promoted replica keeps the
/// cluster's `system_identifier` and the database oid, so an HA failover passes. An identity
/// stamped before the place was recorded (`None`) passes until it is stamped again.
pub fn check_place(
    database: &str,
    identity_name: &str,
    recorded: Option<Place>,
    here: Place,
) -> Result<()> {
    match recorded {
        Some(stamped) if stamped != here => Err(Error::Runner(RunnerError::IdentityMismatch {
            database: database.to_string(),
            identity_name: identity_name.to_string(),
            stamped_system_identifier: stamped.system_identifier,
            stamped_database_oid: stamped.database_oid,
            found_system_identifier: here.system_identifier,
            found_database_oid: here.database_oid,
        })),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_identity_stamped_elsewhere_is_refused_naming_both_places() {
        let stamped = Place {
            system_identifier: 7,
            database_oid: 16384,
        };
        let copy = Place {
            system_identifier: 7,
            database_oid: 16999,
        };
        assert!(check_place("main", "main", Some(stamped), stamped).is_ok());
        assert!(check_place("main", "main", None, copy).is_ok());
        let err = check_place("main", "main", Some(stamped), copy).unwrap_err();
        let message = err.to_string();
        assert!(
            message.contains("system_identifier 7, database oid 16384"),
            "{message}"
        );
        assert!(
            message.contains("system_identifier 7, database oid 16999"),
            "{message}"
        );
        assert_eq!(err.kind(), "IdentityMismatch");
    }
    use crate::topology::Database;

    fn topology() -> Topology {
        let db = |name: &str, schemas: &[&str], fallback: Option<&str>| Database {
            name: name.into(),
            gitlab_schemas: schemas
                .iter()
                .map(std::string::ToString::to_string)
                .collect(),
            lock_gitlab_schemas: vec![],
            fallback_database: fallback.map(str::to_string),
        };
        Topology::new(vec![
            db("main", &["gitlab_main", "gitlab_shared"], None),
            db("ci", &["gitlab_ci", "gitlab_shared"], Some("main")),
        ])
        .unwrap()
    }

    fn identity(name: &str, serves: &[&str]) -> Identity {
        Identity {
            name: name.into(),
            serves: serves
                .iter()
                .map(std::string::ToString::to_string)
                .collect(),
            epoch: 3,
            stamped_at: String::new(),
        }
    }

    #[test]
    fn the_owner_works_on_every_schema_its_database_serves() {
        let fenced = fence(&identity("main", &["main", "ci"]), "main", &topology()).unwrap();
        assert_eq!(
            fenced,
            Fence::Work {
                allowed: vec![
                    "gitlab_ci".into(),
                    "gitlab_main".into(),
                    "gitlab_shared".into()
                ],
                epoch: 3
            }
        );
    }

    #[test]
    fn a_database_sharing_the_owners_idles() {
        let fenced = fence(&identity("main", &["main", "ci"]), "ci", &topology()).unwrap();
        assert_eq!(
            fenced,
            Fence::Idle {
                owner: "main".into()
            }
        );
    }

    #[test]
    fn a_mis_pointed_connection_is_refused() {
        let err = fence(&identity("main", &["main"]), "ci", &topology()).unwrap_err();
        assert!(matches!(
            err,
            Error::Runner(RunnerError::MisroutedConnection { .. })
        ));
        assert!(err.to_string().contains("\"ci\""), "{err}");
    }
}
