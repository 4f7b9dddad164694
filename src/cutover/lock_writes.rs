//! Write locks after the split: triggers on each physical database reject INSERT, UPDATE, DELETE
//! and TRUNCATE on the tables of every `gitlab_schema` it no longer serves (docs/architecture.md section 10),
//! partitions included.
//!
//! Each table and partition gets a statement-level trigger. A partitioned table also gets a
//! row-level one, because PostgreSQL clones row-level triggers (not statement-level ones) onto
//! partitions created later: rows written straight into a new partition are refused too. A new
//! partition's TRUNCATE, and a new table of a locked schema, are locked only when the locks are
//! laid again (`lock_writes` is idempotent; `rake schema_fence:lock_writes`).

use postgres::GenericClient;

use super::split::locked_schemas;
use super::tables::{tables_of, Relation};
use crate::dictionary::Dictionary;
use crate::error::Result;
use crate::sql::quote_ident;
use crate::topology::Topology;

/// The setting that lets one transaction write anyway (maintenance, the cleanup of stale
/// copies): its value must be that transaction's id, so only the transaction that set it with
/// [`BYPASS`] (a local `set_config`) gets through; a session-wide SET lets nothing through.
pub const BYPASS_SETTING: &str = "schema_fence.bypass_lock_writes";

/// Run inside the maintenance transaction, before its writes.
pub const BYPASS: &str =
    "SELECT set_config('schema_fence.bypass_lock_writes', txid_current()::text, true)";

const TRIGGER: &str = "schema_fence_lock_writes";
const ROW_TRIGGER: &str = "schema_fence_lock_writes_rows";

const FUNCTION: &str = r#"
CREATE OR REPLACE FUNCTION schema_fence_lock_writes() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF current_setting('schema_fence.bypass_lock_writes', true) = txid_current()::text THEN
        IF TG_LEVEL = 'ROW' THEN
            IF TG_OP = 'DELETE' THEN
                RETURN OLD;
            END IF;
            RETURN NEW;
        END IF;
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

/// A SQL string literal (`standard_conforming_strings` is on in every supported server).
pub(super) fn literal(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// Locks the tables of every `gitlab_schema` that a database serving `serves` does not own, and
/// unlocks every other table (a lock left from an earlier role of the database: GitLab's
/// `TablesLocker` does both); returns the locked ones. `database` names the physical database in
/// the message. Idempotent.
pub fn lock_writes(
    db: &mut impl GenericClient,
    dictionary: &Dictionary,
    topology: &Topology,
    database: &str,
    serves: &[String],
) -> Result<Vec<Relation>> {
    let schemas = locked_schemas(topology, serves)?;
    if schemas.is_empty() {
        unlock_except(db, &[])?;
        return Ok(vec![]);
    }
    db.batch_execute(FUNCTION)?;
    let locked = tables_of(db, dictionary, &schemas)?;
    for relation in &locked {
        let args = format!(
            "{}, {}",
            literal(database),
            literal(&relation.gitlab_schema)
        );
        let mut ddl = format!(
            "DROP TRIGGER IF EXISTS {trigger} ON {table}; \
             CREATE TRIGGER {trigger} BEFORE INSERT OR UPDATE OR DELETE OR TRUNCATE ON {table} \
             FOR EACH STATEMENT EXECUTE FUNCTION schema_fence_lock_writes({args});",
            trigger = quote_ident(TRIGGER),
            table = relation.name,
        );
        if relation.partitioned {
            ddl.push_str(&format!(
                "DROP TRIGGER IF EXISTS {trigger} ON {table}; \
                 CREATE TRIGGER {trigger} BEFORE INSERT OR UPDATE OR DELETE ON {table} \
                 FOR EACH ROW EXECUTE FUNCTION schema_fence_lock_writes({args});",
                trigger = quote_ident(ROW_TRIGGER),
                table = relation.name,
            ));
        }
        db.batch_execute(&ddl)?;
    }
    let names: Vec<String> = locked.iter().map(|r| r.name.clone()).collect();
    unlock_except(db, &names)?;
    Ok(locked)
}

/// Removes every write lock of this database (rollback of a split); returns the tables.
pub fn unlock_writes(db: &mut impl GenericClient) -> Result<Vec<String>> {
    unlock_except(db, &[])
}

/// Removes the write locks of every table but `keep` (names as `regclass` prints them); returns
/// the tables unlocked.
fn unlock_except(db: &mut impl GenericClient, keep: &[String]) -> Result<Vec<String>> {
    // Clones on partitions (tgparentid <> 0) go with their parent's trigger.
    let rows = db.query(
        "SELECT DISTINCT c.oid::regclass::text, t.tgname FROM pg_trigger t \
         JOIN pg_class c ON c.oid = t.tgrelid WHERE t.tgname = ANY($1) AND t.tgparentid = 0 \
         AND NOT c.oid::regclass::text = ANY($2) ORDER BY 1",
        &[&vec![TRIGGER, ROW_TRIGGER], &keep],
    )?;
    let mut tables: Vec<String> = Vec::with_capacity(rows.len());
    for row in rows {
        let (table, trigger): (String, String) = (row.get(0), row.get(1));
        // regclass text is already a valid, quoted-where-needed name.
        db.batch_execute(&format!(
            "DROP TRIGGER IF EXISTS {} ON {table}",
            quote_ident(&trigger)
        ))?;
        if !tables.contains(&table) {
            tables.push(table);
        }
    }
    Ok(tables)
}
