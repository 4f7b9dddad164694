//! The progress merge of a rollback after the promotion (docs/architecture.md section 10): the migrations
//! that moved ran on the target after the split, while the source kept a stale copy of each. The
//! source takes the target's progress back, matching each migration by its configuration (job
//! class, table, column, arguments, tag), never by id: the id sequences of the two sides diverged
//! after the split.
//!
//! The target's copy is always at least as far as the source's (the source's is the state at the
//! split, and the target went on from it), so the source takes the target's row and batches:
//! finished batches stay finished (no range is run again), running and failed ones go back to
//! pending with fresh attempts, and a migration queued on the target after the split is created on
//! the source.

use postgres::{Client, Transaction};

use crate::error::Result;
use crate::sql::quote_ident;

const MIGRATIONS: &str = "batched_background_migrations";
const JOBS: &str = "batched_background_migration_jobs";
const PARENT: &str = "batched_background_migration_id";

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MergeReport {
    /// Migrations found on both sides and brought up to the target's progress.
    pub matched: usize,
    /// Migrations queued on the target after the split, created on the source.
    pub created: usize,
    /// Batches copied from the target.
    pub jobs: usize,
}

/// The columns a table has on both sides, `id` and `skip` aside, quoted.
fn shared_columns(
    source: &mut Transaction<'_>,
    target: &mut Client,
    table: &str,
    skip: &[&str],
) -> Result<Vec<String>> {
    let sql = "SELECT attname::text FROM pg_attribute WHERE attrelid = $1::text::regclass \
               AND attnum > 0 AND NOT attisdropped ORDER BY attnum";
    let on_target: Vec<String> = target
        .query(sql, &[&table])?
        .iter()
        .map(|r| r.get(0))
        .collect();
    Ok(source
        .query(sql, &[&table])?
        .iter()
        .map(|r| r.get::<_, String>(0))
        .filter(|c| c != "id" && !skip.contains(&c.as_str()) && on_target.contains(c))
        .map(|c| quote_ident(&c))
        .collect())
}

/// Merges the target's migrations of `tags` into the source, in the source's transaction.
pub fn merge(
    source: &mut Transaction<'_>,
    target: &mut Client,
    tags: &[String],
) -> Result<MergeReport> {
    let migration_columns = shared_columns(source, target, MIGRATIONS, &[])?;
    let job_columns = shared_columns(source, target, JOBS, &[PARENT])?;
    let list = |columns: &[String]| columns.join(", ");
    let migrations = target.query(
        "SELECT id, to_jsonb(m)::text FROM batched_background_migrations m \
         WHERE gitlab_schema = ANY($1) ORDER BY id",
        &[&tags],
    )?;
    let mut report = MergeReport::default();
    for row in migrations {
        let (target_id, record): (i64, String) = (row.get(0), row.get(1));
        let found = source.query_opt(
            "SELECT s.id FROM batched_background_migrations s, \
                 jsonb_populate_record(NULL::batched_background_migrations, $1::text::jsonb) t \
             WHERE s.job_class_name = t.job_class_name AND s.table_name = t.table_name \
               AND s.column_name = t.column_name AND s.job_arguments = t.job_arguments \
               AND s.gitlab_schema = t.gitlab_schema",
            &[&record],
        )?;
        let columns = list(&migration_columns);
        let source_id: i64 = if let Some(found) = found {
            let id: i64 = found.get(0);
            source.execute(
                &format!(
                    "UPDATE batched_background_migrations SET ({columns}) = \
                     (SELECT {columns} FROM jsonb_populate_record(NULL::batched_background_migrations, \
                      $1::text::jsonb)) WHERE id = $2"
                ),
                &[&record, &id],
            )?;
            source.execute(
                "DELETE FROM batched_background_migration_jobs WHERE batched_background_migration_id = $1",
                &[&id],
            )?;
            report.matched += 1;
            id
        } else {
            report.created += 1;
            source
                .query_one(
                    &format!(
                        "INSERT INTO batched_background_migrations ({columns}) SELECT {columns} \
                         FROM jsonb_populate_record(NULL::batched_background_migrations, $1::text::jsonb) \
                         RETURNING id"
                    ),
                    &[&record],
                )?
                .get(0)
        };
        let jobs: String = target
            .query_one(
                "SELECT COALESCE(jsonb_agg(to_jsonb(j) ORDER BY j.id), '[]')::text \
                 FROM batched_background_migration_jobs j WHERE j.batched_background_migration_id = $1",
                &[&target_id],
            )?
            .get(0);
        let job_list = list(&job_columns);
        let copied = source.execute(
            &format!(
                "INSERT INTO batched_background_migration_jobs ({job_list}, {parent}) \
                 SELECT {job_list}, $2 FROM jsonb_populate_recordset(NULL::batched_background_migration_jobs, \
                 $1::text::jsonb) ORDER BY id",
                parent = quote_ident(PARENT)
            ),
            &[&jobs, &source_id],
        )?;
        report.jobs += usize::try_from(copied).expect("a row count fits in usize");
        // Whatever was under way on the target starts again here, from scratch.
        let reset_lease = if job_columns.iter().any(|c| c == "\"lease_owner\"") {
            ", lease_owner = NULL, lease_expires_at = NULL"
        } else {
            ""
        };
        source.execute(
            &format!(
                "UPDATE batched_background_migration_jobs SET status = 0, attempts = 0, \
                 updated_at = now(){reset_lease} WHERE batched_background_migration_id = $1 AND status IN (1, 2)"
            ),
            &[&source_id],
        )?;
    }
    Ok(report)
}
