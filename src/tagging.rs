//! Enqueue-time tagging (docs/architecture.md section 6): which `gitlab_schema` a migration is stored with.

mod error;
pub use error::TaggingError;

use crate::dictionary::Dictionary;
use crate::error::{Error, Result};
use crate::{GITLAB_INTERNAL, GITLAB_SHARED};

/// The tag for a migration of `table` in a migration restricted to `restriction`.
pub fn tag(dictionary: &Dictionary, table: &str, restriction: Option<&str>) -> Result<String> {
    let restriction = restriction.ok_or_else(|| {
        Error::Tagging(TaggingError::MissingSchemaRestriction {
            table: table.to_string(),
        })
    })?;
    let schema = dictionary.table_schema_strict(table)?;
    if schema == GITLAB_INTERNAL {
        return Err(Error::Tagging(TaggingError::InternalSchema {
            table: table.to_string(),
        }));
    }
    if schema == restriction {
        return Ok(schema.to_string());
    }
    Err(Error::Tagging(TaggingError::SchemaMismatch {
        table: table.to_string(),
        table_schema: schema.to_string(),
        restriction: restriction.to_string(),
        hint: if schema == GITLAB_SHARED {
            "a gitlab_shared table is migrated on every database: restrict the migration to gitlab_shared"
        } else {
            "restrict the migration to the table's gitlab_schema, in the migrations of the database that owns it"
        },
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::DictionaryError;

    fn dictionary() -> (tempfile::TempDir, Dictionary) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("map.yml");
        std::fs::write(
            &path,
            "ci_builds: :gitlab_ci\nprojects: :gitlab_main\nschema_migrations: :gitlab_internal\n\
             loose_foreign_keys_deleted_records: :gitlab_shared\n",
        )
        .unwrap();
        let dict = Dictionary::load(&[path]).unwrap();
        (dir, dict)
    }

    #[test]
    fn a_table_of_the_restricted_schema_is_tagged_with_it() {
        let (_d, dict) = dictionary();
        assert_eq!(
            tag(&dict, "ci_builds", Some("gitlab_ci")).unwrap(),
            "gitlab_ci"
        );
        assert_eq!(
            tag(
                &dict,
                "gitlab_partitions_dynamic.ci_builds_101",
                Some("gitlab_ci")
            )
            .unwrap(),
            "gitlab_ci"
        );
    }

    #[test]
    fn shared_tables_only_under_a_gitlab_shared_restriction() {
        let (_d, dict) = dictionary();
        let t = "loose_foreign_keys_deleted_records";
        assert_eq!(
            tag(&dict, t, Some("gitlab_shared")).unwrap(),
            "gitlab_shared"
        );
        let err = tag(&dict, t, Some("gitlab_main")).unwrap_err();
        assert!(
            matches!(err, Error::Tagging(TaggingError::SchemaMismatch { .. })),
            "{err}"
        );
        assert!(err
            .to_string()
            .contains("restrict the migration to gitlab_shared"));
    }

    #[test]
    fn every_refusal_has_its_own_error() {
        let (_d, dict) = dictionary();
        assert!(matches!(
            tag(&dict, "ci_builds", None),
            Err(Error::Tagging(
                TaggingError::MissingSchemaRestriction { .. }
            ))
        ));
        assert!(matches!(
            tag(&dict, "nope", Some("gitlab_ci")),
            Err(Error::Dictionary(DictionaryError::UnknownTable { .. }))
        ));
        assert!(matches!(
            tag(&dict, "schema_migrations", Some("gitlab_internal")),
            Err(Error::Tagging(TaggingError::InternalSchema { .. }))
        ));
        let err = tag(&dict, "projects", Some("gitlab_ci")).unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.contains("projects") && msg.contains("gitlab_main") && msg.contains("gitlab_ci")
        );
    }
}
