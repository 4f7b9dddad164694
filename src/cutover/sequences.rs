//! Logical replication carries rows, not sequences: after the target has taken inserts into the
//! moved tables, the source's sequences of those tables are behind, and the first insert after
//! the re-point would collide with a row the target created. The rollback moves each one past
//! the target's value.

use postgres::Client;

use super::tables::Relation;
use crate::error::Result;

/// The sequences owned by the columns of a table (serial and identity columns).
const OWNED_SEQUENCES: &str = "SELECT s.oid::regclass::text FROM pg_depend d \
    JOIN pg_class s ON s.oid = d.objid AND s.relkind = 'S' \
    WHERE d.refobjid = $1::text::regclass AND d.classid = 'pg_class'::regclass \
      AND d.deptype IN ('a', 'i')";

/// Sets each sequence of `relations` on the source to at least the target's last value; returns
/// `(sequence, value)` for those it moved.
pub fn move_past(
    source: &mut Client,
    target: &mut Client,
    relations: &[Relation],
) -> Result<Vec<(String, i64)>> {
    let mut moved = Vec::new();
    for relation in relations {
        for row in target.query(OWNED_SEQUENCES, &[&relation.name])? {
            let sequence: String = row.get(0);
            let on_target: Option<i64> = target
                .query_one(
                    "SELECT pg_sequence_last_value($1::text::regclass)",
                    &[&sequence],
                )?
                .get(0);
            let Some(value) = on_target else {
                continue;
            };
            let on_source: Option<i64> = source
                .query_one(
                    "SELECT pg_sequence_last_value($1::text::regclass)",
                    &[&sequence],
                )?
                .get(0);
            if on_source.is_some_and(|v| v >= value) {
                continue;
            }
            source.query_one(
                "SELECT setval($1::text::regclass, $2, true)",
                &[&sequence, &value],
            )?;
            moved.push((sequence, value));
        }
    }
    Ok(moved)
}
