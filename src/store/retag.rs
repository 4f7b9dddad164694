//! Retagging (docs/architecture.md section 5): each row's tag re-derived from its own `table_name` through
//! the dictionary, as the install does for tables without `gitlab_schema`. It repairs GitLab's
//! blanket `gitlab_main` tag on rows queued before GitLab tagged them (migration 20220503035221).

use super::{int, text, Db};
use crate::dictionary::Dictionary;
use crate::error::{Error, Result, StoreError};
use crate::GITLAB_INTERNAL;

/// One row whose stored tag differs from what the dictionary says of its table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetagChange {
    pub id: i64,
    pub table_name: String,
    pub from: String,
    pub to: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RetagReport {
    pub changes: Vec<RetagChange>,
    /// Rows whose table does not resolve (or is `gitlab_internal)`: `(id, table_name)`.
    pub unresolved: Vec<(i64, String)>,
    /// Whether the changes were written.
    pub applied: bool,
}

/// The tag a row of `table` gets: its table's `gitlab_schema`, unless unknown or internal.
pub(crate) fn derived_tag<'d>(dictionary: &'d Dictionary, table: &str) -> Option<&'d str> {
    dictionary
        .table_schema(table)
        .filter(|schema| *schema != GITLAB_INTERNAL)
}

/// Compares every row's tag with its table's; with `apply`, writes the differences in the
/// caller's transaction (one statement). With a row that does not resolve, nothing is written:
/// `apply` fails with [`StoreError::UnresolvedRows`] listing them.
pub fn retag(db: &mut dyn Db, dictionary: &Dictionary, apply: bool) -> Result<RetagReport> {
    let rows = db.query(
        "SELECT id::text, table_name, gitlab_schema FROM batched_background_migrations ORDER BY id",
        &[],
    )?;
    let mut report = RetagReport::default();
    for row in &rows {
        let (id, table, tag) = (int(row, 0)?, text(row, 1)?, text(row, 2)?);
        match derived_tag(dictionary, table) {
            Some(schema) if schema != tag => report.changes.push(RetagChange {
                id,
                table_name: table.to_string(),
                from: tag.to_string(),
                to: schema.to_string(),
            }),
            Some(_) => {}
            None => report.unresolved.push((id, table.to_string())),
        }
    }
    if !apply || report.changes.is_empty() && report.unresolved.is_empty() {
        return Ok(report);
    }
    if !report.unresolved.is_empty() {
        return Err(Error::Store(StoreError::UnresolvedRows {
            rows: report.unresolved,
        }));
    }
    let pairs: Vec<serde_json::Value> = report
        .changes
        .iter()
        .map(|c| serde_json::json!({"id": c.id, "from": c.from, "to": c.to}))
        .collect();
    let pairs = serde_json::Value::Array(pairs).to_string();
    // The old tag is part of the match: a row retagged meanwhile by someone else is not touched.
    let updated = db.query(
        "UPDATE batched_background_migrations AS m SET gitlab_schema = t.\"to\", updated_at = now() \
         FROM jsonb_to_recordset($1::jsonb) AS t(id bigint, \"from\" text, \"to\" text) \
         WHERE m.id = t.id AND m.gitlab_schema = t.\"from\" RETURNING m.id",
        &[Some(&pairs)],
    )?;
    if updated.len() != report.changes.len() {
        return Err(Error::unexpected(format!(
            "retag: {} of {} rows changed while retagging; nothing was written, run it again",
            report.changes.len() - updated.len(),
            report.changes.len()
        )));
    }
    report.applied = true;
    Ok(report)
}
