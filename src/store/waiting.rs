//! Why an active migration is not running now (docs/architecture.md section 11: status "with a waiting
//! reason"). The reasons follow the fetch's own rules (runner/sql.rs): a paused migration is
//! never fetched; one on hold waits until `on_hold_until`; per table only the oldest executable
//! migration is fetched; a migration waits `interval` after its latest batch was created.

/// What the listing read besides the row itself, as of the database's `now()`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Schedule {
    /// The database's clock when the listing was read (seconds since the epoch).
    pub now: f64,
    /// `on_hold_until`, when set (seconds since the epoch).
    pub on_hold_until: Option<f64>,
    /// Why it is on hold, where the row records it (`schema_fence_hold_reason`, or GitLab's).
    pub hold_reason: Option<String>,
    /// The oldest executable migration of the same table queued before this one.
    pub behind: Option<i64>,
    /// When the latest batch was created (seconds since the epoch).
    pub last_batch_at: Option<f64>,
    /// Batches running now.
    pub running: i64,
    /// Failed batches with attempts left (the runner's default limit).
    pub retryable: i64,
    /// Batches not yet run.
    pub pending: i64,
    /// `schema_fence` runner connections to this database (`application_name`
    /// `schema_fence/<database>/runner`).
    pub workers: i64,
}

/// Why a migration is waiting.
#[derive(Debug, Clone, PartialEq)]
pub enum Waiting {
    /// Paused by an operator or a cutover's pause of this migration.
    Paused,
    /// On hold until then, for that reason if recorded.
    OnHold { until: f64, reason: Option<String> },
    /// Another migration of the same table, queued earlier, runs first.
    Behind { migration_id: i64 },
    /// Its interval since the latest batch has not elapsed: due then.
    Interval { due_at: f64 },
    /// Due, but no `schema_fence` worker is connected to the database.
    NoWorker,
    /// Due, and failed batches wait for their retry: the next claim takes one of them.
    RetryPending { failed: i64 },
}

impl Waiting {
    /// A short name: `paused`, `on_hold`, `behind`, `interval`, `no_worker`, `retry`.
    pub fn kind(&self) -> &'static str {
        match self {
            Waiting::Paused => "paused",
            Waiting::OnHold { .. } => "on_hold",
            Waiting::Behind { .. } => "behind",
            Waiting::Interval { .. } => "interval",
            Waiting::NoWorker => "no_worker",
            Waiting::RetryPending { .. } => "retry",
        }
    }

    /// The time it waits for, where there is one (seconds since the epoch).
    pub fn until(&self) -> Option<f64> {
        match self {
            Waiting::OnHold { until, .. } => Some(*until),
            Waiting::Interval { due_at } => Some(*due_at),
            _ => None,
        }
    }
}

/// Why a migration of status `status` with this schedule is not running now; `None` when it
/// runs (a batch is running) or when nothing is to wait for (finished, failed, finalized).
pub fn waiting(
    status: super::Status,
    interval_seconds: i64,
    schedule: &Schedule,
) -> Option<Waiting> {
    use super::Status;
    match status {
        Status::Paused => return Some(Waiting::Paused),
        Status::Active | Status::Finalizing => {}
        _ => return None,
    }
    if schedule.running > 0 {
        return None;
    }
    if let Some(until) = schedule.on_hold_until.filter(|u| *u > schedule.now) {
        return Some(Waiting::OnHold {
            until,
            reason: schedule.hold_reason.clone(),
        });
    }
    // A finalize runs its batches back to back, whatever the table's other migrations.
    if status == Status::Active {
        if let Some(migration_id) = schedule.behind {
            return Some(Waiting::Behind { migration_id });
        }
        if let Some(due_at) = schedule
            .last_batch_at
            .map(|at| at + interval_seconds as f64)
            .filter(|due| *due > schedule.now)
        {
            return Some(Waiting::Interval { due_at });
        }
    }
    if schedule.workers == 0 {
        return Some(Waiting::NoWorker);
    }
    if schedule.retryable > 0 {
        return Some(Waiting::RetryPending {
            failed: schedule.retryable,
        });
    }
    None
}

#[cfg(test)]
mod tests {
    use super::super::Status;
    use super::*;

    fn due() -> Schedule {
        Schedule {
            now: 1_000.0,
            workers: 1,
            ..Schedule::default()
        }
    }

    #[test]
    fn a_running_or_due_migration_waits_for_nothing() {
        assert_eq!(waiting(Status::Active, 120, &due()), None);
        let running = Schedule {
            running: 1,
            behind: Some(3),
            ..due()
        };
        assert_eq!(waiting(Status::Active, 120, &running), None);
        assert_eq!(waiting(Status::Finished, 120, &due()), None);
    }

    #[test]
    fn each_reason_in_the_fetchs_order() {
        assert_eq!(waiting(Status::Paused, 120, &due()), Some(Waiting::Paused));
        let held = Schedule {
            on_hold_until: Some(1_600.0),
            hold_reason: Some("autovacuum on ci_builds".into()),
            behind: Some(3),
            ..due()
        };
        assert_eq!(
            waiting(Status::Active, 120, &held),
            Some(Waiting::OnHold {
                until: 1_600.0,
                reason: Some("autovacuum on ci_builds".into())
            })
        );
        let behind = Schedule {
            on_hold_until: Some(900.0),
            behind: Some(3),
            last_batch_at: Some(990.0),
            ..due()
        };
        assert_eq!(
            waiting(Status::Active, 120, &behind),
            Some(Waiting::Behind { migration_id: 3 })
        );
        let interval = Schedule {
            last_batch_at: Some(990.0),
            ..due()
        };
        assert_eq!(
            waiting(Status::Active, 120, &interval),
            Some(Waiting::Interval { due_at: 1_110.0 })
        );
        let unserved = Schedule {
            workers: 0,
            ..due()
        };
        assert_eq!(
            waiting(Status::Active, 120, &unserved),
            Some(Waiting::NoWorker)
        );
        let retry = Schedule {
            retryable: 2,
            ..due()
        };
        assert_eq!(
            waiting(Status::Active, 120, &retry),
            Some(Waiting::RetryPending { failed: 2 })
        );
    }

    #[test]
    fn a_finalize_waits_for_no_interval_and_no_other_migration() {
        let schedule = Schedule {
            behind: Some(3),
            last_batch_at: Some(990.0),
            ..due()
        };
        assert_eq!(waiting(Status::Finalizing, 120, &schedule), None);
    }
}
