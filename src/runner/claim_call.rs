//! The runner's side of `public.schema_fence_claim` (see `claim_function.rs`): what it fenced
//! on last, the call, and the batch built from the answer.

use super::batch::Batch;
use super::claim_function::CALL;
use super::fence;
use super::pace;
use super::reach::{Place, Reach};
use super::{Claim, Runner};
use crate::batching::Strategy;
use crate::error::Result;
use crate::store::Identity;
use postgres::error::SqlState;

/// The identity a claim fenced on (read under the share lock, claims not paused), where its
/// row says it was stamped, and the schemas it allowed.
#[derive(Debug, Clone)]
pub(super) struct ClaimFence {
    pub identity: Identity,
    pub recorded: Option<Place>,
    pub allowed: Vec<String>,
}

impl Runner {
    /// The claim as one statement, while the identity is what the last claim fenced on. `None`:
    /// claim statement by statement instead (no fence yet, the identity changed, a cursor
    /// migration, a standby, or a database installed before the function existed).
    pub(super) fn claim_in_one_statement(
        &mut self,
        only: Option<i64>,
        expected_epoch: Option<i64>,
        finalizing: bool,
    ) -> Result<Option<Claim>> {
        self.connection()?;
        let Some(fenced) = self.claim_fence.clone() else {
            return Ok(None);
        };
        if !self.claim_function
            || expected_epoch.is_some_and(|epoch| epoch != fenced.identity.epoch)
        {
            return Ok(None);
        }
        let identity = &fenced.identity;
        fence::check_place(&self.database, &identity.name, fenced.recorded, self.place)?;
        let (system_identifier, database_oid) = fenced
            .recorded
            .map(|p| (p.system_identifier, p.database_oid))
            .unzip();
        let options = self.options.clone();
        let limits = options.limits();
        let lease = options.lease.as_secs_f64();
        let local = self.settings_sql("LOCAL");
        let pacing = self.pace.clone();
        let owner = self.owner.clone();
        let place = self.place;
        let hint = self.walk_ahead_hint();
        // Each answer `check` reads one more migration's indicators: at most one per candidate.
        for _ in 0..=options.fetch_limit.max(1) {
            let checked = pace::lock(&pacing).checked();
            let ahead: Option<Vec<i64>> = hint.map(Vec::from);
            let (client, statements) = self.connection()?;
            let params: [&dyn super::statements::Param; 15] = [
                &identity.name,
                &identity.serves,
                &identity.epoch,
                &system_identifier,
                &database_oid,
                &fenced.allowed,
                &only,
                &finalizing,
                &owner,
                &lease,
                &limits.max_attempts,
                &limits.stuck_after_secs,
                &options.fetch_limit,
                &checked,
                &ahead,
            ];
            let answer = if statements.prepared() {
                statements.query_one(client, CALL, &params)
            } else {
                // Behind a pooler: BEGIN with the SET LOCALs, the call, COMMIT.
                Runner::in_local_transaction(client, &local, |client| {
                    statements.query_one(client, CALL, &params)
                })
            };
            let row = match answer {
                Err(e) if e.code() == Some(&SqlState::UNDEFINED_FUNCTION) => {
                    self.claim_function = false;
                    return Ok(None);
                }
                other => other?,
            };
            let outcome: String = row.get(0);
            match outcome.as_str() {
                "batch" => {
                    let mut batch = batch_from(&row, identity.epoch)?;
                    batch.reach = Reach {
                        identity_name: identity.name.clone(),
                        epoch: identity.epoch,
                        place,
                    };
                    return Ok(Some(Claim::Batch(batch)));
                }
                "nothing" => return Ok(Some(Claim::Nothing)),
                "check" => {
                    let id: i64 = row.get(1);
                    let held = pace::lock(&pacing).held(client, statements, id)?;
                    if held && only.is_some() {
                        return Ok(Some(Claim::Nothing));
                    }
                }
                "identity" => {
                    self.claim_fence = None;
                    return Ok(None);
                }
                _ => return Ok(None),
            }
        }
        Ok(None)
    }
}

/// The batch of an answer `batch`, in the columns' order of the function's result.
fn batch_from(row: &postgres::Row, epoch: i64) -> Result<Batch> {
    let strategy =
        Strategy::from_name(&row.try_get::<_, String>(15)?).unwrap_or(Strategy::PrimaryKey);
    Ok(Batch {
        job_id: row.try_get(2)?,
        migration_id: row.try_get(1)?,
        job_class_name: row.try_get(3)?,
        table_name: row.try_get(4)?,
        column_name: row.try_get(5)?,
        job_arguments: row.try_get(6)?,
        gitlab_schema: row.try_get(7)?,
        min_value: row.try_get(8)?,
        max_value: row.try_get(9)?,
        batch_size: row.try_get(10)?,
        sub_batch_size: row.try_get(11)?,
        pause_ms: row.try_get(12)?,
        attempts: row.try_get(13)?,
        epoch,
        strategy,
        reach: Reach::default(),
        cursor: None,
        dense: row.try_get(14)?,
    })
}
