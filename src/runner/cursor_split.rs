//! A timed-out cursor batch is halved as an id batch is (docs/architecture.md section 8): the
//! job keeps its first `batch_size / 2` keys in keyset order, a new pending job takes the rest.

use postgres::Transaction;

use super::batch::{Batch, Completion};
use super::cursor::{json, walk_keys, walk_sql, CursorRange};
use super::statements::Statements;
use crate::error::Result;

/// The job keeps its lower half; both halves start with their attempts unused (GitLab's split
/// does the same: each is a new range).
const SHRINK_JOB: &str = r#"
UPDATE batched_background_migration_jobs
SET max_cursor = $3::text::jsonb, batch_size = $4, sub_batch_size = LEAST(sub_batch_size, $4),
    status = 0, attempts = 0, lease_owner = NULL, lease_expires_at = NULL, updated_at = now()
WHERE id = $1 AND lease_owner = $2 AND status = 1
RETURNING batched_background_migration_id, sub_batch_size, pause_ms
"#;

const INSERT_PENDING_JOB: &str = r#"
INSERT INTO batched_background_migration_jobs
    (created_at, updated_at, batched_background_migration_id, min_cursor, max_cursor, batch_size,
     sub_batch_size, pause_ms, status)
VALUES (now(), now(), $1, $2::text::jsonb, $3::text::jsonb, $4, $5, $6, 0)
"#;

/// Halves `batch`, which timed out and is larger than its sub-batch (the caller checks that, as
/// GitLab's `can_split?` does). When fewer than half its keys are left (rows deleted since), only
/// its size is halved, as GitLab does, so a later timeout can split it.
pub(super) fn split(
    tx: &mut Transaction<'_>,
    st: &mut Statements,
    batch: &Batch,
    cursor: &CursorRange,
    owner: &str,
) -> Result<Completion> {
    let half = (batch.batch_size / 2).max(1);
    let walk = walk_sql(&batch.table_name, &cursor.columns, true)?;
    let walked = walk_keys(tx, st, &walk, &cursor.min, &cursor.max, i64::from(half))?;
    let mid = walked
        .and_then(|(_, last)| last)
        .filter(|mid| *mid < cursor.max);
    let upper = mid.as_deref().and_then(successor);
    let (Some(mid), Some(upper)) = (mid, upper) else {
        let kept = json(&cursor.max);
        let shrunk = st.query_opt(tx, SHRINK_JOB, &[&batch.job_id, &owner, &kept, &half])?;
        return Ok(shrunk.map_or(Completion::LeaseLost, |_| Completion::Recorded));
    };
    let Some(row) = st.query_opt(tx, SHRINK_JOB, &[&batch.job_id, &owner, &json(&mid), &half])?
    else {
        return Ok(Completion::LeaseLost);
    };
    let (migration, sub, pause): (i64, i32, i32) = (row.get(0), row.get(1), row.get(2));
    let rest = (batch.batch_size - half).max(1);
    st.execute(
        tx,
        INSERT_PENDING_JOB,
        &[
            &migration,
            &json(&upper),
            &json(&cursor.max),
            &rest,
            &sub.min(rest),
            &pause,
        ],
    )?;
    Ok(Completion::Recorded)
}

/// The least key after `key` in keyset order over integer columns: its last value plus one
/// (GitLab's `midpoint.next` for a tuple). A key present only after the split, between the two,
/// then still falls in the upper half. `None` at the type's end.
fn successor(key: &[i64]) -> Option<Vec<i64>> {
    let (last, head) = key.split_last()?;
    let mut next = head.to_vec();
    next.push(last.checked_add(1)?);
    Some(next)
}

#[cfg(test)]
mod tests {
    use super::successor;

    #[test]
    fn the_upper_half_starts_right_after_the_midpoint_in_keyset_order() {
        assert_eq!(successor(&[50, 100]), Some(vec![50, 101]));
        assert_eq!(successor(&[7]), Some(vec![8]));
        assert_eq!(successor(&[1, i64::MAX]), None);
    }
}
