//! Batching strategies (docs/architecture.md section 8): which `batch_class_name`s this library runs, which
//! key types it batches over, and why a tracking row cannot be run.

use crate::error::{Error, Result};

/// GitLab's default strategy: consecutive ranges of the batching column.
pub const PRIMARY_KEY: &str = "PrimaryKeyBatchingStrategy";
/// GitLab's strategy for the distinct values of a non-unique column (`distinct_each_batch`).
pub const LOOSE_INDEX_SCAN: &str = "LooseIndexScanBatchingStrategy";

/// The strategies a batch can be claimed with.
pub const SUPPORTED: [&str; 2] = [PRIMARY_KEY, LOOSE_INDEX_SCAN];

/// Key types the keyset batching reads and binds in their own type.
pub const KEY_TYPES: [&str; 3] = ["smallint", "integer", "bigint"];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Strategy {
    PrimaryKey,
    LooseIndexScan,
}

impl Strategy {
    /// GitLab stores the class name without its module (`PrimaryKeyBatchingStrategy`); a
    /// fully qualified `Gitlab::BackgroundMigration::BatchingStrategies::...` name is the same.
    pub fn from_name(name: &str) -> Option<Strategy> {
        match name.rsplit("::").next().unwrap_or(name) {
            PRIMARY_KEY => Some(Strategy::PrimaryKey),
            LOOSE_INDEX_SCAN => Some(Strategy::LooseIndexScan),
            _ => None,
        }
    }

    /// The name stored on the row: GitLab's, without the module.
    pub fn name(self) -> &'static str {
        match self {
            Strategy::PrimaryKey => PRIMARY_KEY,
            Strategy::LooseIndexScan => LOOSE_INDEX_SCAN,
        }
    }

    /// The strategy for `name`, or an error naming the supported ones.
    pub fn parse(name: &str) -> Result<Strategy> {
        Strategy::from_name(name).ok_or_else(|| Error::InvalidArgument {
            what: "batch_class_name".into(),
            problem: format!(
                "{name:?} is not a batching strategy schema_fence runs; supported: {}",
                SUPPORTED.join(", ")
            ),
        })
    }
}

/// Why a tracking row cannot be run by this library, or `None` when it can. Such a row is
/// listed (with this reason) and never fetched or claimed; other migrations run as usual.
pub fn not_runnable_reason(
    batch_class_name: &str,
    has_key_range: bool,
    has_cursor: bool,
) -> Option<String> {
    if !has_key_range && has_cursor {
        // Whether the key it is walked over fits is read with the row by the listing
        // (`cursor_key_problem`) and by the claim, which holds the migration with why.
        if Strategy::from_name(batch_class_name) == Some(Strategy::PrimaryKey) {
            return None;
        }
        return Some(format!(
            "cursor-batched (min_cursor/max_cursor) with batch_class_name {batch_class_name:?}: \
             schema_fence walks cursors with {PRIMARY_KEY} only"
        ));
    }
    if !has_key_range {
        return Some("no key range (min_value/max_value are NULL)".into());
    }
    if !SUPPORTED.contains(&batch_class_name) {
        return Some(format!(
            "batch_class_name {batch_class_name:?} is not supported (supported: {})",
            SUPPORTED.join(", ")
        ));
    }
    None
}

/// Why a row's cursors cannot be walked, read from the row alone (the listing shows it as not
/// runnable before any claim tries): both must be JSON arrays of integers of one width.
pub fn cursor_shape_problem(min_cursor: &str, max_cursor: &str) -> Option<String> {
    let width = |text: &str| -> std::result::Result<usize, String> {
        let values: Vec<serde_json::Value> =
            serde_json::from_str(text).map_err(|_| format!("cursor {text} is not a JSON array"))?;
        match values.iter().find(|v| v.as_i64().is_none()) {
            Some(v) => Err(format!(
                "cursor {text} holds {v}: only integer keys are batched"
            )),
            None => Ok(values.len()),
        }
    };
    match (width(min_cursor), width(max_cursor)) {
        (Err(why), _) | (_, Err(why)) => Some(why),
        (Ok(a), Ok(b)) if a != b || a == 0 => Some(format!(
            "min_cursor and max_cursor must have the same number of values, have {a} and {b}"
        )),
        _ => None,
    }
}

/// Why a cursor row cannot be walked over `key`, the columns it is walked over with their types
/// (`None`: no such column): its job class's stored `cursor` columns when `declared`, else the
/// table's primary key. One text for the listing and the claim, so the listing says before any
/// claim tries what the claim would hold the row for.
pub fn cursor_key_problem(
    table: &str,
    width: usize,
    declared: bool,
    key: &[(String, Option<String>)],
) -> Option<String> {
    let names = || {
        key.iter()
            .map(|(c, _)| c.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    };
    if key.len() != width {
        return Some(if declared {
            format!(
                "cursor-batched over {width} values, but its cursor columns ({}) are {}",
                names(),
                key.len()
            )
        } else {
            format!(
                "cursor-batched over {width} values, but table {table} has a primary key of {} \
                 columns; schema_fence walks the primary key of a row it did not queue",
                key.len()
            )
        });
    }
    for (column, kind) in key {
        match kind {
            None => return Some(format!("table {table} has no cursor column {column}")),
            Some(kind) if !KEY_TYPES.contains(&kind.as_str()) => {
                return Some(format!(
                    "cursor column {table}.{column} is {kind}; schema_fence batches over {}",
                    KEY_TYPES.join(", ")
                ))
            }
            Some(_) => {}
        }
    }
    None
}

/// SQL condition on a `batched_background_migrations` row aliased `m`: what [`not_runnable_reason`]
/// accepts. One text, so the fetch, the claim and the listing agree.
/// A primary-key row without a key range is cursor-batched (GitLab's check constraint: ids or
/// cursors); the claim reads its cursors, so tables older than the cursor columns are read too.
pub const RUNNABLE_CONDITION: &str = "(m.batch_class_name = 'PrimaryKeyBatchingStrategy' \
    OR (m.min_value IS NOT NULL AND m.max_value IS NOT NULL \
    AND m.batch_class_name = 'LooseIndexScanBatchingStrategy'))";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cursor_of_mixed_width_or_non_integer_keys_is_not_runnable_with_why() {
        assert_eq!(cursor_shape_problem("[1, 100]", "[9, 100]"), None);
        assert!(
            cursor_shape_problem("[1, 100]", "[9]").is_some_and(|why| why.contains("have 2 and 1"))
        );
        assert!(cursor_shape_problem("[\"a\", 1]", "[9, 100]")
            .is_some_and(|why| why.contains("only integer keys")));
        assert!(
            cursor_shape_problem("{}", "[9]").is_some_and(|why| why.contains("not a JSON array"))
        );
    }

    #[test]
    fn a_cursor_whose_key_differs_in_width_or_type_is_not_runnable_with_why() {
        let key = |pairs: &[(&str, Option<&str>)]| -> Vec<(String, Option<String>)> {
            pairs
                .iter()
                .map(|(c, t)| ((*c).to_string(), t.map(ToString::to_string)))
                .collect()
        };
        let pk = key(&[("id", Some("bigint")), ("partition_id", Some("integer"))]);
        assert_eq!(cursor_key_problem("ci_stages", 2, false, &pk), None);
        assert!(cursor_key_problem("ci_stages", 1, false, &pk)
            .is_some_and(|why| why.contains("primary key of 2 columns")));
        let declared = key(&[("project_id", Some("integer")), ("name", Some("text"))]);
        assert!(cursor_key_problem("t", 2, true, &declared)
            .is_some_and(|why| why.contains("t.name is text")));
        assert!(cursor_key_problem("t", 1, true, &declared)
            .is_some_and(|why| why.contains("cursor columns (project_id, name) are 2")));
        assert!(cursor_key_problem("t", 1, true, &key(&[("gone", None)]))
            .is_some_and(|why| why.contains("no cursor column gone")));
    }

    #[test]
    fn gitlabs_names_short_and_qualified_are_recognised() {
        assert_eq!(
            Strategy::from_name("PrimaryKeyBatchingStrategy"),
            Some(Strategy::PrimaryKey)
        );
        assert_eq!(
            Strategy::from_name(
                "Gitlab::BackgroundMigration::BatchingStrategies::LooseIndexScanBatchingStrategy"
            ),
            Some(Strategy::LooseIndexScan)
        );
        let err = Strategy::parse("DismissedVulnerabilitiesStrategy").unwrap_err();
        assert!(
            err.to_string().contains("PrimaryKeyBatchingStrategy"),
            "{err}"
        );
    }

    #[test]
    fn a_cursor_row_runs_by_primary_key_and_an_unknown_strategy_is_not_runnable_with_why() {
        assert_eq!(not_runnable_reason(PRIMARY_KEY, false, true), None);
        assert!(not_runnable_reason(LOOSE_INDEX_SCAN, false, true)
            .unwrap()
            .contains("cursor"));
        assert!(not_runnable_reason("OtherStrategy", true, false)
            .unwrap()
            .contains("OtherStrategy"));
        assert_eq!(not_runnable_reason(LOOSE_INDEX_SCAN, true, false), None);
    }
}
