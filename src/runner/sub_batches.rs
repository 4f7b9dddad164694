//! The sub-batches of a primary-key batch, found by one statement before the first runs: one walk
//! of the batch's keys and one round trip, where a walk per sub-batch took one of each per
//! sub-batch.

use crate::error::Result;
use crate::sql::{quote_ident, quote_table};

/// The first key of every `$3`-th key from `$1` on, not past `$2`: the sub-batches' starts, in
/// order. The bounds are bigint, compared with the column in its own type so that its index
/// serves the walk.
pub(super) fn starts_sql(table: &str, column: &str) -> Result<String> {
    let column = quote_ident(column);
    let table = quote_table(table)?;
    Ok(format!(
        "SELECT k FROM (SELECT {column}::bigint AS k, row_number() OVER (ORDER BY {column}) AS n \
         FROM {table} WHERE {column} >= $1::bigint AND {column} <= $2::bigint) keys \
         WHERE n % $3::bigint = 1 ORDER BY k"
    ))
}

/// Each sub-batch runs from its start to just before the next one's; the last reaches the batch's
/// end, so keys added in a gap meanwhile are covered too.
pub(super) fn bounds(starts: &[i64], batch_max: i64) -> Vec<(i64, i64)> {
    starts
        .iter()
        .enumerate()
        .map(|(i, &first)| {
            let last = starts.get(i + 1).map_or(batch_max, |next| next - 1);
            (first, last)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sub_batches_tile_the_batch_from_its_first_key_to_its_end() {
        assert_eq!(bounds(&[3, 10, 42], 100), vec![(3, 9), (10, 41), (42, 100)]);
        assert_eq!(bounds(&[7], 7), vec![(7, 7)]);
        assert_eq!(bounds(&[], 7), vec![]);
    }

    #[test]
    fn names_are_quoted() {
        let sql = starts_sql("weird\"table", "we\"ird").unwrap();
        assert!(sql.contains("\"we\"\"ird\""), "{sql}");
        assert!(sql.contains("\"weird\"\"table\""), "{sql}");
    }
}
