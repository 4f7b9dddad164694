//! The batch optimizer (docs/architecture.md section 8), GitLab's rule: time efficiency is a job's duration
//! over the migration's interval; the smoothed efficiency of the last 20 succeeded jobs (an
//! exponential moving average, alpha 0.4, newest first) outside 0.9..0.95 scales `batch_size`
//! toward 0.95, by at most x1.2, within [1,000, `max_batch_size` or 2,000,000].

/// GitLab's constants, as options so a test or an operator can narrow them.
#[derive(Debug, Clone, PartialEq)]
pub struct OptimizerOptions {
    pub enabled: bool,
    pub target: (f64, f64),
    pub min_batch_size: i32,
    pub max_batch_size: i32,
    pub max_multiplier: f64,
    pub number_of_jobs: i64,
    pub alpha: f64,
}

impl Default for OptimizerOptions {
    fn default() -> Self {
        OptimizerOptions {
            enabled: true,
            target: (0.9, 0.95),
            min_batch_size: 1_000,
            max_batch_size: 2_000_000,
            max_multiplier: 1.2,
            number_of_jobs: 20,
            alpha: 0.4,
        }
    }
}

/// The smoothed efficiency, newest job first; `None` with fewer than `number_of_jobs` jobs.
/// Rounded to two decimals as GitLab does, so a value at the edge of the target does not flap.
pub fn smoothed_efficiency(newest_first: &[f64], options: &OptimizerOptions) -> Option<f64> {
    if i64::try_from(newest_first.len()).unwrap_or(i64::MAX) < options.number_of_jobs {
        return None;
    }
    let (mut dividend, mut divisor) = (0.0, 0.0);
    for (i, efficiency) in newest_first.iter().enumerate() {
        let weight = (1.0 - options.alpha).powi(i32::try_from(i).unwrap_or(i32::MAX));
        dividend += efficiency * weight;
        divisor += weight;
    }
    if divisor == 0.0 {
        return Some(0.0);
    }
    Some((dividend / divisor * 100.0).round() / 100.0)
}

/// The new batch size for `efficiency`, or `None` when it stays (inside the target, or no
/// measurement).
pub fn next_batch_size(
    batch_size: i32,
    max_batch_size: Option<i32>,
    efficiency: f64,
    options: &OptimizerOptions,
) -> Option<i32> {
    let (low, high) = options.target;
    if efficiency <= 0.0 || (low..=high).contains(&efficiency) {
        return None;
    }
    // GitLab's assumption: efficiency is linear in the batch size.
    let multiplier = (high / efficiency).min(options.max_multiplier);
    let max = max_batch_size
        .unwrap_or(options.max_batch_size)
        .max(options.min_batch_size);
    // Clamped into [min, max] as a float first, so the cast neither truncates nor wraps.
    #[allow(clippy::cast_possible_truncation)]
    let next = (f64::from(batch_size) * multiplier)
        .clamp(f64::from(options.min_batch_size), f64::from(max)) as i32;
    (next != batch_size).then_some(next)
}

/// `$1` migration, `$2` job, `$3` smoothed efficiency, `$4` the batch size decided (unchanged
/// when it stays): the decision on the job, and the migration's new size.
pub const RECORD_DECISION: &str = r#"
WITH job AS (
    UPDATE batched_background_migration_jobs
    SET schema_fence_efficiency = $3, schema_fence_next_batch_size = $4
    WHERE id = $2
)
UPDATE batched_background_migrations SET batch_size = $4, updated_at = now()
WHERE id = $1 AND batch_size <> $4
"#;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nothing_is_decided_before_twenty_jobs() {
        let options = OptimizerOptions::default();
        assert_eq!(smoothed_efficiency(&[0.5; 19], &options), None);
        assert_eq!(smoothed_efficiency(&[0.5; 20], &options), Some(0.5));
    }

    #[test]
    fn the_newest_jobs_weigh_most() {
        let options = OptimizerOptions::default();
        let mut jobs = vec![1.0];
        jobs.extend([0.0; 19]);
        assert_eq!(smoothed_efficiency(&jobs, &options), Some(0.4));
    }

    #[test]
    fn a_step_is_at_most_one_fifth_larger_and_stays_within_the_bounds() {
        let options = OptimizerOptions::default();
        assert_eq!(next_batch_size(10_000, None, 0.1, &options), Some(12_000));
        assert_eq!(next_batch_size(10_000, None, 1.9, &options), Some(5_000));
        assert_eq!(next_batch_size(10_000, None, 0.92, &options), None);
        assert_eq!(next_batch_size(1_000, None, 5.0, &options), None);
        assert_eq!(
            next_batch_size(10_000, Some(11_000), 0.1, &options),
            Some(11_000)
        );
        assert_eq!(
            next_batch_size(1_900_000, None, 0.1, &options),
            Some(2_000_000)
        );
    }

    #[test]
    fn a_job_whose_duration_is_linear_in_its_size_converges_into_the_target() {
        let options = OptimizerOptions::default();
        let seconds_per_key = 0.000_05; // interval 1 s: 19,000 keys make 0.95
        let mut batch_size = 1_000;
        let mut newest_first: Vec<f64> = Vec::new();
        for _ in 0..200 {
            newest_first.insert(0, f64::from(batch_size) * seconds_per_key);
            newest_first.truncate(20);
            if let Some(e) = smoothed_efficiency(&newest_first, &options) {
                if let Some(next) = next_batch_size(batch_size, None, e, &options) {
                    batch_size = next;
                }
            }
        }
        let efficiency = f64::from(batch_size) * seconds_per_key;
        assert!(
            (0.85..=0.96).contains(&efficiency),
            "{batch_size} keys: {efficiency}"
        );
    }
}
