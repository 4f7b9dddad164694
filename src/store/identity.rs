//! The identity row: which logical databases a physical database serves, and since when.

use super::{int, text, Db};
use crate::error::{Error, Result};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub name: String,
    pub serves: Vec<String>,
    pub epoch: i64,
    pub stamped_at: String,
}

const READ: &str = "SELECT name, array_to_json(serves)::text, epoch::text, stamped_at::text \
                    FROM schema_fence_identity WHERE singleton";

/// Reads the identity of the database `db` reached; `None` when none was stamped yet.
pub fn read(db: &mut dyn Db) -> Result<Option<Identity>> {
    let exists = db.query(
        "SELECT to_regclass('schema_fence_identity') IS NOT NULL",
        &[],
    )?;
    if text(&exists[0], 0)? != "t" {
        return Ok(None);
    }
    let rows = db.query(READ, &[])?;
    let Some(row) = rows.first() else {
        return Ok(None);
    };
    let serves: Vec<String> = serde_json::from_str(text(row, 1)?).map_err(|e| Error::Database {
        message: format!("schema_fence_identity.serves is not a text array: {e}"),
        sqlstate: None,
    })?;
    Ok(Some(Identity {
        name: text(row, 0)?.to_string(),
        serves,
        epoch: int(row, 2)?,
        stamped_at: text(row, 3)?.to_string(),
    }))
}

/// Reads the identity, or explains how to create it.
pub fn require(db: &mut dyn Db) -> Result<Identity> {
    read(db)?.ok_or(Error::IdentityMissing)
}

/// Stamps the first identity of a database. Stamping again for a database it already serves
/// changes nothing; for any other database it is refused, since that connection is mis-pointed.
pub fn stamp_initial(db: &mut dyn Db, name: &str, serves: &[String]) -> Result<Identity> {
    if let Some(existing) = read(db)? {
        if existing.serves.iter().any(|s| s == name) {
            return Ok(existing);
        }
        return Err(Error::IdentityConflict {
            wanted: name.to_string(),
            existing_name: existing.name,
            existing_serves: existing.serves,
        });
    }
    let serves_json = serde_json::to_string(serves).expect("a list of strings serialises");
    db.query(
        "INSERT INTO schema_fence_identity (name, serves, epoch) \
         VALUES ($1, ARRAY(SELECT jsonb_array_elements_text($2::jsonb)), 0)",
        &[Some(name), Some(&serves_json)],
    )?;
    require(db)
}
