//! GitLab's job transition log: every status change of a batch is logged whatever makes it, in
//! monthly partitions, kept for the configured months; the install works on GitLab's own log.

mod common;

use common::*;
use schema_fence::runner::{Claim, Runner, RunnerOptions};
use schema_fence::store::jobs::JobStatus;
use schema_fence::store::{self, transition_log};

fn strings(names: &[&str]) -> Vec<String> {
    names.iter().map(std::string::ToString::to_string).collect()
}

/// main serving main and ci, with `ci_builds` of `rows` keys and a backfill of it queued.
fn database(prefix: &str, rows: i64, (batch, sub): (i64, i64)) -> String {
    let url = fresh_database(prefix);
    let mut client = connect(&url);
    store::install(&mut client, "main", &strings(&["main", "ci"]), None).unwrap();
    client
        .batch_execute(&format!(
            "CREATE TABLE ci_builds (id bigint PRIMARY KEY, done int NOT NULL DEFAULT 0);
             INSERT INTO ci_builds (id) SELECT generate_series(1, {rows});"
        ))
        .unwrap();
    queue_backfill(
        &mut client,
        &gitlab_dictionary(),
        "ci_builds",
        "gitlab_ci",
        (batch, sub),
    );
    url
}

fn runner(url: &str) -> Runner {
    Runner::new(url, "main", gitlab_topology(), RunnerOptions::default())
}

fn claim(runner: &mut Runner) -> schema_fence::runner::Batch {
    match runner.claim_next().unwrap() {
        Claim::Batch(batch) => batch,
        other => panic!("expected a batch, got {other:?}"),
    }
}

/// `(previous_status, next_status, exception_class, exception_message)` of a job, oldest first.
type Logged = (i16, i16, Option<String>, Option<String>);

fn logged(url: &str, job_id: i64) -> Vec<Logged> {
    connect(url)
        .query(
            "SELECT previous_status, next_status, exception_class, exception_message \
             FROM batched_background_migration_job_transition_logs \
             WHERE batched_background_migration_job_id = $1 ORDER BY id",
            &[&job_id],
        )
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3)))
        .collect()
}

/// Every logged move of the database's jobs is one of the job status table's
/// (`store::jobs::MOVES`); `outside` are the ones a test made itself, outside the library.
fn assert_moves_are_tabled(url: &str, outside: &[(i16, i16)]) {
    let moves: Vec<(i16, i16)> = connect(url)
        .query(
            "SELECT DISTINCT previous_status, next_status FROM batched_background_migration_job_transition_logs",
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    assert!(!moves.is_empty());
    for (previous, next) in moves {
        if outside.contains(&(previous, next)) {
            continue;
        }
        let status = |code: i16| JobStatus::from_code(code.into()).expect("a GitLab job status");
        assert!(
            status(previous).moves_to(status(next)),
            "the library moved a job {previous} -> {next}, which store::jobs::MOVES does not have"
        );
    }
}

fn plain(previous: i16, next: i16) -> Logged {
    (previous, next, None, None)
}

/// The monthly partitions of the log, as `name` (without schema) ordered by name.
fn partitions(client: &mut postgres::Client) -> Vec<String> {
    client
        .query(
            "SELECT c.relname::text FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid \
             WHERE i.inhparent = 'batched_background_migration_job_transition_logs'::regclass \
             ORDER BY 1",
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect()
}

fn month_suffix(client: &mut postgres::Client, months_from_now: i32) -> String {
    client
        .query_one(
            "SELECT to_char(date_trunc('month', now()) + make_interval(months => $1), 'YYYYMM')",
            &[&months_from_now],
        )
        .unwrap()
        .get(0)
}

#[test]
fn a_batch_claimed_and_completed_is_logged_pending_to_running_to_succeeded() {
    let url = database("log_success", 100, (100, 50));
    let mut worker = runner(&url);
    let batch = claim(&mut worker);
    worker.complete(&batch, "{}").unwrap();
    assert_eq!(logged(&url, batch.job_id), vec![plain(0, 1), plain(1, 3)]);
    assert_moves_are_tabled(&url, &[]);
}

#[test]
fn a_failed_attempt_logs_the_exception_class_and_message_and_its_retry_is_logged_too() {
    let url = database("log_failure", 100, (100, 50));
    let mut worker = runner(&url);
    let batch = claim(&mut worker);
    worker
        .fail(
            &batch,
            "ActiveRecord::StatementInvalid: PG::UndefinedColumn: column \"x\" does not exist",
            false,
        )
        .unwrap();
    let retry = claim(&mut worker);
    assert_eq!(retry.job_id, batch.job_id, "the failed batch is retried");
    worker
        .fail(&retry, "interrupted: shutting down", false)
        .unwrap();
    assert_eq!(
        logged(&url, batch.job_id),
        vec![
            plain(0, 1),
            (
                1,
                2,
                Some("ActiveRecord::StatementInvalid".into()),
                Some("PG::UndefinedColumn: column \"x\" does not exist".into())
            ),
            plain(2, 1),
            (1, 2, None, Some("interrupted: shutting down".into())),
        ]
    );
    assert_moves_are_tabled(&url, &[]);
}

#[test]
fn a_split_on_timeout_and_a_change_made_outside_the_library_are_logged() {
    let url = database("log_split", 100, (100, 10));
    let mut worker = runner(&url);
    let batch = claim(&mut worker);
    worker
        .fail(&batch, "canceling statement due to statement timeout", true)
        .unwrap();
    // An operator's UPDATE (or GitLab's own worker) takes no path of ours and is logged all the same.
    connect(&url)
        .execute(
            "UPDATE batched_background_migration_jobs SET status = 3, updated_at = now() WHERE id = $1",
            &[&batch.job_id],
        )
        .unwrap();
    assert_eq!(
        logged(&url, batch.job_id),
        vec![plain(0, 1), plain(1, 0), plain(0, 3)]
    );
    // The other half was inserted pending: no status change to log.
    let other: i64 = connect(&url)
        .query_one("SELECT max(id) FROM batched_background_migration_jobs", &[])
        .unwrap()
        .get(0);
    assert_ne!(other, batch.job_id);
    assert_eq!(logged(&url, other), vec![]);
    assert_moves_are_tabled(&url, &[(0, 3)]);
}

#[test]
fn a_long_message_is_cut_to_gitlabs_limits_rather_than_failing_the_batch() {
    let url = database("log_long", 100, (100, 50));
    let mut worker = runner(&url);
    let batch = claim(&mut worker);
    let class = format!("A{}", "b".repeat(150));
    let message = "m".repeat(3000);
    worker
        .fail(&batch, &format!("{class}: {message}"), false)
        .unwrap();
    let (_, next, class_logged, message_logged) = logged(&url, batch.job_id).pop().unwrap();
    assert_eq!(next, 2);
    assert_eq!(class_logged.unwrap().len(), 100);
    assert_eq!(message_logged.unwrap().len(), 1000);
}

#[test]
fn the_install_creates_this_month_and_six_ahead_and_a_second_install_creates_nothing() {
    let url = fresh_database("log_install");
    let mut client = connect(&url);
    store::install(&mut client, "main", &strings(&["main"]), None).unwrap();
    let mut expected: Vec<String> = (0..=6)
        .map(|m| {
            format!(
                "batched_background_migration_job_transition_logs_{}",
                month_suffix(&mut client, m)
            )
        })
        .collect();
    expected.insert(
        0,
        "batched_background_migration_job_transition_logs_default".into(),
    );
    expected.sort();
    assert_eq!(partitions(&mut client), expected);
    store::install(&mut client, "main", &strings(&["main"]), None).unwrap();
    let again = transition_log::maintain(&mut client, None).unwrap();
    assert_eq!(again, transition_log::MaintainReport::default());
    assert_eq!(partitions(&mut client), expected);
}

#[test]
fn on_gitlabs_own_log_the_install_adds_only_the_months_gitlab_lacks_in_its_partition_schema() {
    let url = fresh_database("log_gitlab");
    let mut client = connect(&url);
    let ddl = std::fs::read_to_string(gitlab_fixtures().join("batched_background_migrations.sql"))
        .unwrap()
        // GitLab's database has monthly partitions in gitlab_partitions_dynamic, no default one.
        .replace(
            "CREATE TABLE batched_background_migration_job_transition_logs_default\n    PARTITION OF batched_background_migration_job_transition_logs DEFAULT;",
            "",
        );
    assert!(
        !ddl.contains("_default"),
        "the fixture's default partition was left out"
    );
    client.batch_execute(&ddl).unwrap();
    let this_month = month_suffix(&mut client, 0);
    client
        .batch_execute(&format!(
            "CREATE SCHEMA gitlab_partitions_dynamic;
             CREATE TABLE gitlab_partitions_dynamic.batched_background_migration_job_transition_logs_{this_month}
                 PARTITION OF batched_background_migration_job_transition_logs
                 FOR VALUES FROM (date_trunc('month', now())) TO (date_trunc('month', now()) + interval '1 month');"
        ))
        .unwrap();
    let dictionary = gitlab_dictionary();
    store::install(
        &mut client,
        "main",
        &strings(&["main", "ci"]),
        Some(&dictionary),
    )
    .unwrap();
    let in_gitlab_schema: i64 = client
        .query_one(
            "SELECT count(*) FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid \
             JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE i.inhparent = 'batched_background_migration_job_transition_logs'::regclass \
               AND n.nspname = 'gitlab_partitions_dynamic'",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(in_gitlab_schema, 7, "GitLab's month and the six it lacked");
    assert!(!partitions(&mut client)
        .iter()
        .any(|p| p.ends_with("_default")));

    // And a batch on GitLab's tables is logged into GitLab's partition of this month.
    client
        .batch_execute(
            "CREATE TABLE ci_builds (id bigint PRIMARY KEY, done int NOT NULL DEFAULT 0);
             INSERT INTO ci_builds (id) SELECT generate_series(1, 10);",
        )
        .unwrap();
    queue_backfill(&mut client, &dictionary, "ci_builds", "gitlab_ci", (10, 5));
    let mut worker = runner(&url);
    let batch = claim(&mut worker);
    worker.complete(&batch, "{}").unwrap();
    let here: i64 = client
        .query_one(
            &format!(
                "SELECT count(*) FROM gitlab_partitions_dynamic.\
                 batched_background_migration_job_transition_logs_{this_month}"
            ),
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(here, 2);
}

#[test]
fn maintenance_drops_the_months_past_the_retention_and_keeps_the_rest() {
    let url = database("log_retention", 10, (10, 5));
    let mut client = connect(&url);
    let mut worker = runner(&url);
    let batch = claim(&mut worker);
    worker.complete(&batch, "{}").unwrap();
    // Rows of long ago, in the default partition (they predate every monthly one), and a
    // partition of eight months ago.
    let eight_ago = month_suffix(&mut client, -8);
    client
        .batch_execute(&format!(
            "INSERT INTO batched_background_migration_job_transition_logs
                 (batched_background_migration_job_id, created_at, updated_at, previous_status, next_status)
             SELECT {job}, now() - interval '2 years', now(), 0, 1;
             CREATE TABLE batched_background_migration_job_transition_logs_{eight_ago}
                 PARTITION OF batched_background_migration_job_transition_logs
                 FOR VALUES FROM (date_trunc('month', now()) - interval '8 months')
                 TO (date_trunc('month', now()) - interval '7 months');
             INSERT INTO batched_background_migration_job_transition_logs
                 (batched_background_migration_job_id, created_at, updated_at, previous_status, next_status)
             SELECT {job}, date_trunc('month', now()) - interval '8 months', now(), 0, 1;",
            job = batch.job_id
        ))
        .unwrap();
    let kept = transition_log::maintain(&mut client, Some(12)).unwrap();
    assert!(kept.dropped.is_empty(), "{kept:?}");
    let report = transition_log::maintain(&mut client, Some(6)).unwrap();
    assert_eq!(
        report.dropped,
        vec![format!(
            "batched_background_migration_job_transition_logs_{eight_ago}"
        )]
    );
    assert_eq!(
        logged(&url, batch.job_id),
        vec![plain(0, 1), plain(1, 3)],
        "this month's rows stay, the old ones are gone"
    );
}

#[test]
fn a_retention_under_a_month_is_refused_and_changes_nothing() {
    let url = fresh_database("log_bad_retention");
    let mut client = connect(&url);
    store::install(&mut client, "main", &strings(&["main"]), None).unwrap();
    let before = partitions(&mut client);
    let err = transition_log::maintain(&mut client, Some(0)).unwrap_err();
    assert!(err.to_string().contains("at least one month"), "{err}");
    assert_eq!(partitions(&mut client), before);
}

#[test]
fn the_latest_transitions_per_migration_are_read_newest_first() {
    let url = database("log_recent", 30, (10, 5));
    let mut worker = runner(&url);
    for _ in 0..3 {
        let batch = claim(&mut worker);
        worker.complete(&batch, "{}").unwrap();
    }
    let mut client = connect(&url);
    let id: i64 = client
        .query_one("SELECT id FROM batched_background_migrations", &[])
        .unwrap()
        .get(0);
    let recent = transition_log::recent(&mut client, &[id], 4).unwrap();
    let shape: Vec<(i64, i64)> = recent
        .iter()
        .map(|t| (t.previous_status, t.next_status))
        .collect();
    assert_eq!(shape, vec![(1, 3), (0, 1), (1, 3), (0, 1)]);
    assert!(recent.iter().all(|t| t.migration_id == id));
    assert!(recent[0].job_id > recent[2].job_id, "newest first");
    assert!(
        recent[0].created_at.ends_with('Z'),
        "{}",
        recent[0].created_at
    );
}

#[test]
fn a_log_loaded_from_a_schema_rb_unpartitioned_is_written_and_kept_by_deleting_old_rows() {
    let url = fresh_database("log_plain");
    let mut client = connect(&url);
    // What db:schema:load makes of the log: schema.rb cannot say "partitioned".
    let ddl = std::fs::read_to_string(gitlab_fixtures().join("batched_background_migrations.sql"))
        .unwrap()
        .replace(") PARTITION BY RANGE (created_at);", ");")
        .replace(
            "CREATE TABLE batched_background_migration_job_transition_logs_default\n    PARTITION OF batched_background_migration_job_transition_logs DEFAULT;",
            "",
        );
    assert!(
        !ddl.contains("PARTITION"),
        "the fixture's partitioning was left out"
    );
    client.batch_execute(&ddl).unwrap();
    let dictionary = gitlab_dictionary();
    store::install(
        &mut client,
        "main",
        &strings(&["main", "ci"]),
        Some(&dictionary),
    )
    .unwrap();
    assert_eq!(partitions(&mut client), Vec::<String>::new());
    client
        .batch_execute(
            "CREATE TABLE ci_builds (id bigint PRIMARY KEY, done int NOT NULL DEFAULT 0);
             INSERT INTO ci_builds (id) SELECT generate_series(1, 10);",
        )
        .unwrap();
    queue_backfill(&mut client, &dictionary, "ci_builds", "gitlab_ci", (10, 5));
    let mut worker = runner(&url);
    let batch = claim(&mut worker);
    worker.complete(&batch, "{}").unwrap();
    client
        .execute(
            "INSERT INTO batched_background_migration_job_transition_logs
                 (batched_background_migration_job_id, created_at, updated_at, previous_status, next_status)
             VALUES ($1, now() - interval '1 year', now(), 0, 1)",
            &[&batch.job_id],
        )
        .unwrap();
    let report = transition_log::maintain(&mut client, Some(6)).unwrap();
    assert_eq!(report, transition_log::MaintainReport::default());
    assert_eq!(logged(&url, batch.job_id), vec![plain(0, 1), plain(1, 3)]);
}
