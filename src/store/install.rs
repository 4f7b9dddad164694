//! Installing the tracking tables and the identity on one database, and upgrading GitLab-shaped
//! tables that predate the `gitlab_schema` tag.

use super::{identity, int, schema, text, Db, Identity};
use crate::dictionary::Dictionary;
use crate::error::{Error, Result, StoreError};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstallReport {
    pub identity: Identity,
    /// Rows of pre-existing GitLab tables tagged from their own `table_name`.
    pub backfilled: usize,
    /// Rows whose tag differs from what the dictionary says of their table (GitLab's blanket
    /// tag), or whose table does not resolve; `None` without a dictionary. See [`super::retag`].
    pub mistagged: Option<usize>,
}

/// Creates what is missing and stamps the identity `(name, serves, 0)` if the database has none.
/// Runs in the caller's transaction: on error, the caller rolls back and nothing changed.
///
/// `dictionary` is needed only to upgrade existing tables without `gitlab_schema`.
pub fn install(
    db: &mut dyn Db,
    name: &str,
    serves: &[String],
    dictionary: Option<&Dictionary>,
) -> Result<InstallReport> {
    if !serves.iter().any(|s| s == name) {
        return Err(Error::InvalidArgument {
            what: "serves".into(),
            problem: format!("must include the database being installed, {name:?}"),
        });
    }
    db.batch(schema::CREATE_IDENTITY)?;
    let identity = identity::stamp_initial(db, name, serves)?;
    let inspect = db.query(schema::INSPECT_TRACKING_TABLE, &[])?;
    let (exists, tagged) = (text(&inspect[0], 0)? == "t", text(&inspect[0], 1)? == "t");
    let backfilled = if exists && !tagged {
        let dictionary = dictionary.ok_or(Error::InvalidArgument {
            what: "dictionary".into(),
            problem: "batched_background_migrations exists without gitlab_schema; a dictionary \
                      is needed to tag its rows from their table_name"
                .into(),
        })?;
        backfill(db, dictionary)?
    } else {
        0
    };
    // An existing table is GitLab's (or an earlier install's): used as it is, never re-indexed.
    let (jobs_exist, logs_exist) = (text(&inspect[0], 2)? == "t", text(&inspect[0], 3)? == "t");
    if !exists {
        db.batch(schema::CREATE_MIGRATIONS)?;
    }
    if !jobs_exist {
        db.batch(schema::CREATE_JOBS)?;
    }
    if !logs_exist {
        db.batch(schema::CREATE_TRANSITION_LOGS)?;
    }
    db.batch(schema::CREATE_EXTRAS)?;
    // GitLab's own log keeps its partitions; the install adds only the months it lacks.
    db.batch(super::transition_log::CREATE_TRIGGERS)?;
    super::transition_log::maintain(db, None)?;
    db.batch(super::next_run::CREATE_NEXT_RUN)?;
    // An earlier version's claim function has one parameter fewer: an overload, not replaced.
    db.batch(crate::runner::claim_function::DROP_BEFORE_AHEAD)?;
    db.batch(&crate::runner::claim_function::create_sql())?;
    let mistagged = match dictionary {
        Some(dictionary) => {
            let report = super::retag(db, dictionary, false)?;
            Some(report.changes.len() + report.unresolved.len())
        }
        None => None,
    };
    Ok(InstallReport {
        identity,
        backfilled,
        mistagged,
    })
}

/// Adds `gitlab_schema` to GitLab-shaped rows, each from its own `table_name` (GitLab's blanket
/// `gitlab_main` default mis-tagged ci migrations). Refuses, listing them, if any row does not
/// resolve; nothing is changed before every row has resolved.
fn backfill(db: &mut dyn Db, dictionary: &Dictionary) -> Result<usize> {
    let rows = db.query(
        "SELECT id::text, table_name FROM batched_background_migrations ORDER BY id",
        &[],
    )?;
    let mut tagged = Vec::with_capacity(rows.len());
    let mut unresolved = Vec::new();
    for row in &rows {
        let (id, table) = (int(row, 0)?, text(row, 1)?);
        match super::retag::derived_tag(dictionary, table) {
            Some(schema) => tagged.push((id, schema.to_string())),
            None => unresolved.push((id, table.to_string())),
        }
    }
    if !unresolved.is_empty() {
        return Err(Error::Store(StoreError::UnresolvedRows {
            rows: unresolved,
        }));
    }
    let pairs: Vec<serde_json::Value> = tagged
        .iter()
        .map(|(id, schema)| serde_json::json!({"id": id, "gitlab_schema": schema}))
        .collect();
    let pairs = serde_json::Value::Array(pairs).to_string();
    db.batch("ALTER TABLE batched_background_migrations ADD COLUMN gitlab_schema text")?;
    db.query(
        "UPDATE batched_background_migrations AS m SET gitlab_schema = t.gitlab_schema \
         FROM jsonb_to_recordset($1::jsonb) AS t(id bigint, gitlab_schema text) WHERE m.id = t.id",
        &[Some(&pairs)],
    )?;
    db.batch(
        "ALTER TABLE batched_background_migrations ALTER COLUMN gitlab_schema SET NOT NULL; \
         ALTER TABLE batched_background_migrations ADD CONSTRAINT check_0406d9776f \
         CHECK (char_length(gitlab_schema) <= 255)",
    )?;
    Ok(tagged.len())
}
