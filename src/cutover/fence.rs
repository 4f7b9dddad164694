//! The fence (docs/architecture.md section 10, step 3): from the moment the source's moving tables are
//! fenced until the target owns them, application writes to them on the source fail at once with
//! SQLSTATE `SF001`, so nothing is acknowledged on the source that the target will not have. The
//! fence is laid in one transaction (every moving table at once), so the WAL position the
//! catch-up waits for, read after it, covers every write the source acknowledged.
//!
//! The fence's triggers replicate to the target with everything else; the target lifts them when
//! it takes the tables over (the stamp), and the source replaces them with write locks.

use postgres::GenericClient;

use super::lock_writes::literal;
use super::tables::Relation;
use crate::error::Result;
use crate::sql::quote_ident;

/// The SQLSTATE of a write refused by the fence: retry once the application's connection for the
/// moving database points at the new database.
pub const SQLSTATE: &str = "SF001";

const TRIGGER: &str = "schema_fence_fence";

const FUNCTION: &str = r#"
CREATE OR REPLACE FUNCTION schema_fence_fence() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'table % is moving to database % (cutover %): writes to it are refused here until the cutover has moved it; retry once the application''s % connection points at the new database',
        TG_TABLE_NAME, TG_ARGV[0], TG_ARGV[1], TG_ARGV[0]
        USING ERRCODE = 'SF001',
              HINT = 'a schema_fence cutover is under way; the write is safe to retry';
END
$$
"#;

/// Fences `relations` (the moving tables) in the caller's transaction.
pub fn lay(
    db: &mut impl GenericClient,
    relations: &[Relation],
    moving_to: &str,
    cutover: &str,
) -> Result<()> {
    db.batch_execute(FUNCTION)?;
    let args = format!("{}, {}", literal(moving_to), literal(cutover));
    for relation in relations {
        db.batch_execute(&format!(
            "DROP TRIGGER IF EXISTS {trigger} ON {table}; \
             CREATE TRIGGER {trigger} BEFORE INSERT OR UPDATE OR DELETE OR TRUNCATE ON {table} \
             FOR EACH STATEMENT EXECUTE FUNCTION schema_fence_fence({args})",
            trigger = quote_ident(TRIGGER),
            table = relation.name,
        ))?;
    }
    Ok(())
}

/// Lifts the fence from every table of this database; returns how many tables it held.
pub fn lift(db: &mut impl GenericClient) -> Result<usize> {
    let rows = db.query(
        "SELECT c.oid::regclass::text FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid \
         WHERE t.tgname = $1",
        &[&TRIGGER],
    )?;
    for row in &rows {
        let table: String = row.get(0);
        db.batch_execute(&format!(
            "DROP TRIGGER IF EXISTS {} ON {table}",
            quote_ident(TRIGGER)
        ))?;
    }
    Ok(rows.len())
}
