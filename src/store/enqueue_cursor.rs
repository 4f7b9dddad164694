//! Queueing a cursor-batched migration (a job class declaring GitLab's `cursor`): the columns
//! checked against the table, and the migration's `min_cursor`/`max_cursor`, the first and last
//! key in keyset order over them, as GitLab's helper stores them.

use super::{text, Db};
use crate::batching::KEY_TYPES;
use crate::error::{Error, Result};
use crate::sql::{check_identifier, quote_ident};

/// Each cursor column's type and nullability (`NULL` type: no such column), in cursor order, and
/// whether a valid, non-partial unique index (the primary key included) has key columns that are
/// the cursor's leading columns, in order: then no two rows share a key of the cursor, so keyset
/// order is unique, and the walk's row comparisons range over that index. `$1` is the quoted
/// table, `$2` the columns as a JSON array.
const COLUMNS: &str = r"
WITH wanted AS (
    SELECT ARRAY(SELECT jsonb_array_elements_text($2::jsonb)) AS names
)
SELECT c.name, format_type(a.atttypid, NULL), a.attnotnull::text,
       EXISTS (SELECT FROM pg_index i, wanted
               WHERE i.indrelid = to_regclass($1) AND i.indisunique AND i.indisvalid
                 AND i.indpred IS NULL AND i.indexprs IS NULL
                 AND i.indnkeyatts <= cardinality(wanted.names)
                 AND ARRAY(SELECT ia.attname::text
                           FROM unnest(i.indkey::int2[]) WITH ORDINALITY k(attnum, ord)
                           JOIN pg_attribute ia ON ia.attrelid = i.indrelid AND ia.attnum = k.attnum
                           WHERE k.ord <= i.indnkeyatts ORDER BY k.ord)
                     = wanted.names[1:i.indnkeyatts])::text
FROM jsonb_array_elements_text($2::jsonb) WITH ORDINALITY c(name, ord)
LEFT JOIN pg_attribute a ON a.attrelid = to_regclass($1) AND a.attname = c.name
     AND a.attnum > 0 AND NOT a.attisdropped
ORDER BY c.ord
";

/// The cursor columns as a JSON array, checked against the table: each exists, is of an integer
/// type and NOT NULL, and a unique index or the primary key leads the cursor. Nothing is written.
pub(super) fn check_columns(
    db: &mut dyn Db,
    table: &str,
    quoted_table: &str,
    columns: &[String],
) -> Result<String> {
    let invalid = |problem: String| Error::InvalidArgument {
        what: format!("cursor ({}) of table {table}", columns.join(", ")),
        problem,
    };
    if columns.is_empty() {
        return Err(invalid("names no column".into()));
    }
    for (i, column) in columns.iter().enumerate() {
        check_identifier("column", column)?;
        if columns[..i].contains(column) {
            return Err(invalid(format!("names {column} twice")));
        }
    }
    let names = serde_json::Value::from(columns.to_vec()).to_string();
    let rows = db.query(COLUMNS, &[Some(quoted_table), Some(&names)])?;
    for row in &rows {
        let column = text(row, 0)?;
        let Some(kind) = row.get(1).and_then(|v| v.as_deref()) else {
            return Err(invalid(format!("{table} has no column {column}")));
        };
        if !KEY_TYPES.contains(&kind) {
            return Err(invalid(format!(
                "{table}.{column} is {kind}; cursors batch over {} columns",
                KEY_TYPES.join(", ")
            )));
        }
        if text(row, 2)? != "true" {
            return Err(invalid(format!(
                "{table}.{column} may be NULL, and a NULL key is outside every keyset range"
            )));
        }
    }
    if rows.first().map(|r| text(r, 3)).transpose()? != Some("true") {
        return Err(invalid(format!(
            "no unique index or primary key of {table} has its columns leading the cursor, so \
             keyset order over it is not unique"
        )));
    }
    Ok(names)
}

/// The first and last key of `table` in keyset order over `columns` (checked), as GitLab's JSON
/// arrays; `None` for an empty table.
pub(super) fn bounds(
    db: &mut dyn Db,
    quoted_table: &str,
    columns: &[String],
) -> Result<Option<(String, String)>> {
    let quoted: Vec<String> = columns.iter().map(|c| quote_ident(c)).collect();
    let keys = quoted
        .iter()
        .map(|c| format!("{c}::bigint"))
        .collect::<Vec<_>>()
        .join(", ");
    let order = |direction: &str| {
        quoted
            .iter()
            .map(|c| format!("{c} {direction}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let sql = format!(
        "SELECT (SELECT jsonb_build_array({keys})::text FROM {quoted_table} ORDER BY {asc} LIMIT 1), \
         (SELECT jsonb_build_array({keys})::text FROM {quoted_table} ORDER BY {desc} LIMIT 1)",
        asc = order("ASC"),
        desc = order("DESC")
    );
    let rows = db.query(&sql, &[])?;
    let row = rows.first();
    let value = |i: usize| row.and_then(|r| r.get(i)).and_then(Clone::clone);
    Ok(value(0).zip(value(1)))
}

/// A cursor given by the caller (GitLab's `batch_min_value`/`batch_max_value` as arrays): as many
/// integers as the cursor has columns, as JSON.
pub(super) fn given(what: &str, keys: &[i64], columns: &[String]) -> Result<String> {
    if keys.len() != columns.len() {
        return Err(Error::InvalidArgument {
            what: what.into(),
            problem: format!(
                "has {} values, but the cursor ({}) has {} columns",
                keys.len(),
                columns.join(", "),
                columns.len()
            ),
        });
    }
    Ok(serde_json::Value::from(keys.to_vec()).to_string())
}
