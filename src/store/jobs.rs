//! GitLab's statuses of a batched background migration job (a batch) and the one table of the
//! moves between them that this library makes: the runner's statements, the steering operations
//! and the cutover's merge move a job only along these (a test reads the transition log of real
//! runs against it).

/// GitLab's `BatchedJob` statuses, with its codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum JobStatus {
    Pending,
    Running,
    Failed,
    Succeeded,
}

/// Who moves a job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mover {
    /// The runner: claims, completions, failures, splits, lease takeovers, giving a batch back.
    Runner,
    /// An operator's `retry_failed`, and the cutover's merge of a half-done migration.
    Operator,
}

/// `(from, to, by, why)`: every move this library makes. A claim of a new range inserts a
/// running job (logged by GitLab's trigger as pending to running).
pub const MOVES: &[(JobStatus, JobStatus, Mover, &str)] = &[
    (
        JobStatus::Pending,
        JobStatus::Running,
        Mover::Runner,
        "claim",
    ),
    (
        JobStatus::Failed,
        JobStatus::Running,
        Mover::Runner,
        "retry an attempt",
    ),
    (
        JobStatus::Running,
        JobStatus::Succeeded,
        Mover::Runner,
        "complete",
    ),
    (
        JobStatus::Running,
        JobStatus::Failed,
        Mover::Runner,
        "fail, or abandoned with no attempts left",
    ),
    (
        JobStatus::Running,
        JobStatus::Pending,
        Mover::Runner,
        "split on timeout, or give back",
    ),
    (
        JobStatus::Failed,
        JobStatus::Pending,
        Mover::Operator,
        "retry_failed",
    ),
    (
        JobStatus::Running,
        JobStatus::Pending,
        Mover::Operator,
        "cutover merge",
    ),
    (
        JobStatus::Failed,
        JobStatus::Pending,
        Mover::Operator,
        "cutover merge",
    ),
];

impl JobStatus {
    pub const ALL: [JobStatus; 4] = [
        JobStatus::Pending,
        JobStatus::Running,
        JobStatus::Failed,
        JobStatus::Succeeded,
    ];

    pub fn from_code(code: i64) -> Option<JobStatus> {
        JobStatus::ALL
            .into_iter()
            .find(|s| i64::from(s.code()) == code)
    }

    pub fn code(self) -> i16 {
        match self {
            JobStatus::Pending => 0,
            JobStatus::Running => 1,
            JobStatus::Failed => 2,
            JobStatus::Succeeded => 3,
        }
    }

    /// GitLab's name (`BatchedJob`'s state machine).
    pub fn name(self) -> &'static str {
        match self {
            JobStatus::Pending => "pending",
            JobStatus::Running => "running",
            JobStatus::Failed => "failed",
            JobStatus::Succeeded => "succeeded",
        }
    }

    /// Whether this library ever moves a job from `self` to `to`. Succeeded is final.
    pub fn moves_to(self, to: JobStatus) -> bool {
        MOVES
            .iter()
            .any(|&(from, next, _, _)| from == self && next == to)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_and_names_are_gitlabs() {
        let named: Vec<(i16, &str)> = JobStatus::ALL
            .iter()
            .map(|s| (s.code(), s.name()))
            .collect();
        assert_eq!(
            named,
            [
                (0, "pending"),
                (1, "running"),
                (2, "failed"),
                (3, "succeeded")
            ]
        );
        assert_eq!(JobStatus::from_code(2), Some(JobStatus::Failed));
        assert_eq!(JobStatus::from_code(7), None);
    }

    #[test]
    fn a_succeeded_job_never_moves_again() {
        for to in JobStatus::ALL {
            assert!(
                !JobStatus::Succeeded.moves_to(to),
                "succeeded -> {}",
                to.name()
            );
        }
        assert!(!JobStatus::Pending.moves_to(JobStatus::Succeeded));
    }
}
