//! Write locks after the split: statement-level triggers on each side reject INSERT, UPDATE,
//! DELETE and TRUNCATE on the tables of the other database's schemas.

use postgres::GenericClient;

use crate::dictionary::Dictionary;
use crate::error::Result;
use crate::sql::{quote_ident, quote_table};
use crate::topology::Topology;

/// The setting that lets one transaction write anyway (maintenance, the cleanup of stale
/// copies): its value must be that transaction's id, so only the transaction that set it with
/// [`BYPASS`] (a local `set_config`) gets through; a session-wide SET lets nothing through.
pub const BYPASS_SETTING: &str = "schema_fence.bypass_lock_writes";

/// Run inside the maintenance transaction, before its writes.
pub const BYPASS: &str =
    "SELECT set_config('schema_fence.bypass_lock_writes', txid_current()::text, true)";

const TRIGGER: &str = "schema_fence_lock_writes";

const FUNCTION: &str = r#"
CREATE OR REPLACE FUNCTION schema_fence_lock_writes() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF current_setting('schema_fence.bypass_lock_writes', true) = txid_current()::text THEN
        RETURN NULL;
    END IF;
    RAISE EXCEPTION 'table % is write-locked on database %: it belongs to %, which another database owns since the split',
        TG_TABLE_NAME, TG_ARGV[0], TG_ARGV[1]
        USING ERRCODE = 'object_not_in_prerequisite_state',
              HINT = 'write it on its own database; for maintenance here, run in the transaction: '
                     'SELECT set_config(''schema_fence.bypass_lock_writes'', txid_current()::text, true)';
END
$$
"#;

/// Locks the tables of `database`'s `lock_gitlab_schemas` that exist in this database; returns
/// them. Idempotent.
pub fn lock_writes(
    db: &mut impl GenericClient,
    dictionary: &Dictionary,
    topology: &Topology,
    database: &str,
) -> Result<Vec<String>> {
    let Some(config) = topology.database(database) else {
        return Ok(vec![]);
    };
    db.batch_execute(FUNCTION)?;
    let mut locked = Vec::new();
    for schema in &config.lock_gitlab_schemas {
        for table in dictionary.tables(schema) {
            let quoted = quote_table(table)?;
            let exists: bool = db
                .query_one("SELECT to_regclass($1) IS NOT NULL", &[&quoted])?
                .get(0);
            if !exists {
                continue;
            }
            let literal = |s: &str| format!("'{}'", s.replace('\'', "''"));
            db.batch_execute(&format!(
                "DROP TRIGGER IF EXISTS {trigger} ON {quoted}; \
                 CREATE TRIGGER {trigger} BEFORE INSERT OR UPDATE OR DELETE OR TRUNCATE ON {quoted} \
                 FOR EACH STATEMENT EXECUTE FUNCTION schema_fence_lock_writes({db}, {schema})",
                trigger = quote_ident(TRIGGER),
                db = literal(database),
                schema = literal(schema),
            ))?;
            locked.push(table.to_string());
        }
    }
    Ok(locked)
}

/// Removes every write lock of this database (rollback of a split); returns the tables.
pub fn unlock_writes(db: &mut impl GenericClient) -> Result<Vec<String>> {
    let rows = db.query(
        "SELECT c.oid::regclass::text FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid \
         WHERE t.tgname = $1",
        &[&TRIGGER],
    )?;
    let mut tables = Vec::with_capacity(rows.len());
    for row in rows {
        let table: String = row.get(0);
        // regclass text is already a valid, quoted-where-needed name.
        db.batch_execute(&format!(
            "DROP TRIGGER IF EXISTS {} ON {table}",
            quote_ident(TRIGGER)
        ))?;
        tables.push(table);
    }
    Ok(tables)
}
