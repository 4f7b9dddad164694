//! The identity row: which logical databases a physical database serves, since when, and the
//! physical database it was stamped in. Only this library writes it (install, cutover, adopt):
//! every write joins [`schema::STAMP`], which the identity table's trigger requires.

use super::{int, opt_int, schema, text, Db};
use crate::error::{Error, Result, StoreError};
use crate::runner::Place;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub name: String,
    pub serves: Vec<String>,
    pub epoch: i64,
    pub stamped_at: String,
}

/// Schema-qualified: a `schema_fence_identity` earlier in `search_path` is never read.
const READ: &str = "SELECT name, array_to_json(serves)::text, epoch::text, stamped_at::text, \
                    system_identifier::text, database_oid::text \
                    FROM public.schema_fence_identity WHERE singleton";

/// Whether the identity table exists (the install ran, or a schema dump holding it was loaded),
/// whether or not an identity is stamped in it.
pub fn table_exists(db: &mut dyn Db) -> Result<bool> {
    let exists = db.query(
        "SELECT to_regclass('public.schema_fence_identity') IS NOT NULL",
        &[],
    )?;
    Ok(text(&exists[0], 0)? == "t")
}

/// Reads the identity of the database `db` reached; `None` when none was stamped yet.
pub fn read(db: &mut dyn Db) -> Result<Option<Identity>> {
    Ok(read_with_place(db)?.map(|(identity, _)| identity))
}

/// The identity and the place it records it was stamped in (`None` for an identity stamped
/// before places were recorded).
pub fn read_with_place(db: &mut dyn Db) -> Result<Option<(Identity, Option<Place>)>> {
    if !table_exists(db)? {
        return Ok(None);
    }
    let rows = db.query(READ, &[])?;
    let Some(row) = rows.first() else {
        return Ok(None);
    };
    let serves: Vec<String> = serde_json::from_str(text(row, 1)?).map_err(|e| {
        Error::unexpected(format!(
            "schema_fence_identity.serves is not a text array: {e}"
        ))
    })?;
    let place = match (opt_int(row, 4)?, opt_int(row, 5)?) {
        (Some(system_identifier), Some(database_oid)) => Some(Place {
            system_identifier,
            database_oid,
        }),
        _ => None,
    };
    Ok(Some((
        Identity {
            name: text(row, 0)?.to_string(),
            serves,
            epoch: int(row, 2)?,
            stamped_at: text(row, 3)?.to_string(),
        },
        place,
    )))
}

/// Reads the identity, or explains how to create it.
pub fn require(db: &mut dyn Db) -> Result<Identity> {
    read(db)?.ok_or(Error::Store(StoreError::IdentityMissing))
}

/// [`read_with_place`], or explains how to create the identity.
pub fn require_with_place(db: &mut dyn Db) -> Result<(Identity, Option<Place>)> {
    read_with_place(db)?.ok_or(Error::Store(StoreError::IdentityMissing))
}

/// Stamps the first identity of a database. Stamping again for a database it already serves
/// changes nothing (but records the place of an identity stamped before places were recorded);
/// for any other database it is refused, since that connection is mis-pointed.
pub fn stamp_initial(db: &mut dyn Db, name: &str, serves: &[String]) -> Result<Identity> {
    if let Some((existing, place)) = read_with_place(db)? {
        if existing.serves.iter().any(|s| s == name) {
            if place.is_none() {
                db.query(
                    &format!(
                        "UPDATE public.schema_fence_identity \
                         SET (system_identifier, database_oid) = ({}) FROM {} WHERE singleton",
                        schema::HERE,
                        schema::STAMP
                    ),
                    &[],
                )?;
            }
            return Ok(existing);
        }
        return Err(Error::Store(StoreError::IdentityConflict {
            wanted: name.to_string(),
            existing_name: existing.name,
            existing_serves: existing.serves,
        }));
    }
    let serves_json = serde_json::to_string(serves).expect("a list of strings serialises");
    db.query(
        &format!(
            "INSERT INTO public.schema_fence_identity \
             (name, serves, epoch, system_identifier, database_oid) \
             SELECT $1, ARRAY(SELECT jsonb_array_elements_text($2::jsonb)), 0, {} FROM {}",
            schema::HERE,
            schema::STAMP
        ),
        &[Some(name), Some(&serves_json)],
    )?;
    require(db)
}

/// Adopts a copy of a database on purpose (a restore into another cluster, a `CREATE DATABASE
/// ... TEMPLATE`): its identity becomes `name` serving `serves`, stamped here, at the next
/// epoch (so a view of the identity from before cannot claim).
pub fn adopt(db: &mut dyn Db, name: &str, serves: &[String]) -> Result<Identity> {
    if name.trim().is_empty() || !serves.iter().any(|s| s == name) {
        return Err(Error::InvalidArgument {
            what: "identity".into(),
            problem: format!(
                "name {name:?} must be one of the databases it serves ({})",
                serves.join(", ")
            ),
        });
    }
    if let Some(blank) = serves.iter().find(|s| s.trim().is_empty()) {
        return Err(Error::InvalidArgument {
            what: "identity".into(),
            problem: format!("serves holds a blank database name {blank:?}"),
        });
    }
    if read(db)?.is_none() {
        return Err(Error::Store(StoreError::IdentityMissing));
    }
    let serves_json = serde_json::to_string(serves).expect("a list of strings serialises");
    db.query(
        &format!(
            "UPDATE public.schema_fence_identity \
             SET name = $1, serves = ARRAY(SELECT jsonb_array_elements_text($2::jsonb)), \
                 epoch = epoch + 1, stamped_at = now(), \
                 (system_identifier, database_oid) = ({}) \
             FROM {} WHERE singleton",
            schema::HERE,
            schema::STAMP
        ),
        &[Some(name), Some(&serves_json)],
    )?;
    require(db)
}

/// The stamp of a cutover or of its rollback: this database's identity becomes `name` serving
/// `serves` (none: retired) at `epoch`, in the place it is now. Running it again gives the same.
pub fn stamp(db: &mut dyn Db, name: &str, serves: &[String], epoch: i64) -> Result<()> {
    if serves.is_empty() {
        // Identity tables installed before retirement existed refuse an empty serves.
        db.batch(
            "ALTER TABLE public.schema_fence_identity \
             DROP CONSTRAINT IF EXISTS schema_fence_identity_serves_check",
        )?;
    }
    let serves_json = serde_json::to_string(serves).expect("a list of strings serialises");
    let epoch = epoch.to_string();
    let updated = db.query(
        &format!(
            "UPDATE public.schema_fence_identity \
             SET name = $1, serves = ARRAY(SELECT jsonb_array_elements_text($2::jsonb)), \
                 epoch = $3::bigint, stamped_at = now(), (system_identifier, database_oid) = ({}) \
             FROM {} WHERE singleton RETURNING epoch",
            schema::HERE,
            schema::STAMP
        ),
        &[Some(name), Some(&serves_json), Some(&epoch)],
    )?;
    if updated.is_empty() {
        return Err(Error::Store(StoreError::IdentityMissing));
    }
    Ok(())
}

/// Holds (or allows again) batch claims on this database: the cutover's pause, replicated with
/// the data.
pub fn set_claims_paused(db: &mut dyn Db, paused: bool) -> Result<()> {
    let updated = db.query(
        &format!(
            "UPDATE public.schema_fence_identity SET claims_paused = $1::boolean FROM {} \
             WHERE singleton RETURNING claims_paused",
            schema::STAMP
        ),
        &[Some(if paused { "true" } else { "false" })],
    )?;
    if updated.is_empty() {
        return Err(Error::Store(StoreError::IdentityMissing));
    }
    Ok(())
}

/// The epoch a stamp gives: one more than the one logged when the cutover (or its rollback)
/// began, however often the stamp runs; for logs written before epochs were recorded, one more
/// than the lower side's (both sides had the same at the promotion).
pub fn next_epoch(
    source: &mut dyn Db,
    target: &mut dyn Db,
    epoch_before: Option<i64>,
) -> Result<i64> {
    match epoch_before {
        Some(before) => Ok(before + 1),
        None => Ok(require(source)?.epoch.min(require(target)?.epoch) + 1),
    }
}
