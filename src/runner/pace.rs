//! Pace (docs/architecture.md section 8): the health check before a claim and the batch optimizer after a
//! completion, on the runner's connection, and what they decided for the caller to report.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use postgres::GenericClient;

use super::batch::Recent;
use super::statements::Statements;
use crate::error::Result;
use crate::health::{self, HealthOptions, Reading, Signal, WalSample};
use crate::optimizer::{self, OptimizerOptions};

/// What pace decided, drained by [`super::Runner::take_decisions`].
#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    /// A stop signal put the migration on hold until `until` (seconds since the epoch).
    Held {
        migration_id: i64,
        table_name: String,
        signal: Signal,
        until: f64,
    },
    /// The optimizer measured `efficiency` after job `job_id`, and set `batch_size` (`to`).
    Optimized {
        migration_id: i64,
        job_id: i64,
        efficiency: f64,
        from: i32,
        to: i32,
    },
    /// The optimizer could not run after a batch (the batch itself is recorded).
    OptimizerFailed { migration_id: i64, error: String },
}

/// Holds the migration unless another claim has it locked. `$2` seconds, `$3` the reason.
const HOLD: &str = r#"
UPDATE batched_background_migrations
SET on_hold_until = now() + make_interval(secs => $2), schema_fence_hold_reason = $3,
    updated_at = now()
WHERE id = (SELECT id FROM batched_background_migrations WHERE id = $1 FOR UPDATE SKIP LOCKED)
RETURNING extract(epoch FROM on_hold_until)::float8
"#;

/// Inert until [`super::Runner::set_pace`]: a runner built without options neither throttles nor
/// resizes batches (the Ruby worker always sets both, with GitLab's defaults).
#[derive(Debug)]
pub struct Pace {
    pub health: HealthOptions,
    pub optimizer: OptimizerOptions,
    /// A stop signal of the application's own indicators, set by the caller before a claim.
    pub external: Option<Signal>,
    /// Per migration: when it was read, the table, and what the built-in indicators said.
    cache: HashMap<i64, (Instant, String, Option<Signal>)>,
    wal: WalSample,
    decisions: Vec<Decision>,
}

impl Default for Pace {
    fn default() -> Self {
        Pace {
            health: HealthOptions {
                enabled: false,
                ..HealthOptions::default()
            },
            optimizer: OptimizerOptions {
                enabled: false,
                ..OptimizerOptions::default()
            },
            external: None,
            cache: HashMap::new(),
            wal: WalSample::default(),
            decisions: Vec::new(),
        }
    }
}

impl Pace {
    /// Before claiming migration `id`: reads the indicators (or the cached verdict) and holds
    /// the migration on a stop signal. True when it was held: claim another.
    pub(super) fn held(
        &mut self,
        client: &mut impl GenericClient,
        st: &mut Statements,
        id: i64,
    ) -> Result<bool> {
        if !self.health.enabled {
            return Ok(false);
        }
        let fresh = self
            .cache
            .get(&id)
            .filter(|(at, _, _)| at.elapsed() < self.health.cache)
            .cloned();
        let (table_name, builtin) = if let Some((_, table, signal)) = fresh {
            (table, signal)
        } else {
            let Some(row) = st.query_opt(client, health::reading::READ, &[&id])? else {
                return Ok(false);
            };
            let reading = Reading::from_row(&row);
            let signal = health::evaluate(&reading, &self.health, &mut self.wal);
            let entry = (Instant::now(), reading.table_name.clone(), signal.clone());
            self.cache.insert(id, entry);
            (reading.table_name, signal)
        };
        let Some(signal) = self.external.clone().or(builtin) else {
            return Ok(false);
        };
        let seconds = self.health.hold_for.as_secs_f64();
        let reason = signal.reason.clone();
        let Some(row) = st.query_opt(client, HOLD, &[&id, &seconds, &reason])? else {
            return Ok(true); // another claim has it: not ours to run either
        };
        self.cache.remove(&id);
        self.decisions.push(Decision::Held {
            migration_id: id,
            table_name,
            signal,
            until: row.get(0),
        });
        Ok(true)
    }

    /// The migrations a claim may take without reading their indicators first: those whose
    /// fresh verdict is "go" (none while the application's own indicators say stop). `None`
    /// without a health check.
    pub(super) fn checked(&self) -> Option<Vec<i64>> {
        if !self.health.enabled {
            return None;
        }
        if self.external.is_some() {
            return Some(Vec::new());
        }
        Some(
            self.cache
                .iter()
                .filter(|(_, (at, _, signal))| signal.is_none() && at.elapsed() < self.health.cache)
                .map(|(id, _)| *id)
                .collect(),
        )
    }

    /// How many jobs' efficiencies a completion reads for the optimizer (none without it).
    pub(super) fn recent_jobs(&self) -> i64 {
        if self.optimizer.enabled {
            self.optimizer.number_of_jobs
        } else {
            0
        }
    }

    /// After job `job_id` of migration `id` succeeded, with what its completion read: GitLab's
    /// optimizer step. Writes only when there is a decision (from `number_of_jobs` jobs on).
    pub(super) fn optimize(
        &mut self,
        client: &mut impl GenericClient,
        st: &mut Statements,
        (id, job_id): (i64, i64),
        recent: &Recent,
    ) -> Result<()> {
        if !self.optimizer.enabled {
            return Ok(());
        }
        let (batch_size, max) = (recent.batch_size, recent.max_batch_size);
        let Some(efficiency) =
            optimizer::smoothed_efficiency(&recent.efficiencies, &self.optimizer)
        else {
            return Ok(());
        };
        let to = optimizer::next_batch_size(batch_size, max, efficiency, &self.optimizer)
            .unwrap_or(batch_size);
        st.execute(
            client,
            optimizer::RECORD_DECISION,
            &[&id, &job_id, &efficiency, &to],
        )?;
        self.decisions.push(Decision::Optimized {
            migration_id: id,
            job_id,
            efficiency,
            from: batch_size,
            to,
        });
        Ok(())
    }

    pub(super) fn take_decisions(&mut self) -> Vec<Decision> {
        std::mem::take(&mut self.decisions)
    }

    /// Forgets cached readings (the options changed).
    pub(super) fn forget(&mut self) {
        self.cache.clear();
    }
}

/// The runner's side of pace: its options, the application's signal, and the decisions.
impl super::Runner {
    /// Sets the thresholds of the health indicators and the optimizer's options.
    pub fn set_pace(&mut self, health: HealthOptions, optimizer: OptimizerOptions) {
        let mut pace = lock(&self.pace);
        pace.health = health;
        pace.optimizer = optimizer;
        pace.forget();
    }

    /// The stop signal of the application's own indicators (`None`: they say go); the next
    /// claims hold the migrations they would take.
    pub fn set_external_signal(&mut self, signal: Option<Signal>) {
        lock(&self.pace).external = signal;
    }

    /// What the health check and the optimizer decided since the last call.
    pub fn take_decisions(&mut self) -> Vec<Decision> {
        lock(&self.pace).take_decisions()
    }

    /// The optimizer's step after a recorded completion. The batch is recorded already, so a
    /// failure here is reported as a decision rather than failing the batch.
    pub(super) fn optimize_after(&mut self, batch: &super::Batch, recent: &Recent) {
        let pace = self.pace.clone();
        if !lock(&pace).optimizer.enabled {
            return;
        }
        let local = self.settings_sql("LOCAL");
        let ids = (batch.migration_id, batch.job_id);
        let mut step = || -> Result<()> {
            let (client, statements) = self.connection()?;
            if statements.prepared() {
                // One statement (or none): atomic on its own.
                return lock(&pace).optimize(client, statements, ids, recent);
            }
            let mut tx = super::Runner::begin(client, statements, &local)?;
            lock(&pace).optimize(&mut tx, statements, ids, recent)?;
            tx.commit()?;
            Ok(())
        };
        if let Err(e) = step() {
            lock(&pace).decisions.push(Decision::OptimizerFailed {
                migration_id: batch.migration_id,
                error: e.to_string(),
            });
        }
    }
}

pub(super) fn lock(pace: &Arc<Mutex<Pace>>) -> std::sync::MutexGuard<'_, Pace> {
    pace.lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}
