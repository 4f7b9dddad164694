//! Undoing a split after the promotion: the target's writes come back through the reverse
//! replication, the moved migrations' progress is merged back, the target is retired, and a new
//! split works afterwards.

mod common;

use common::*;
use schema_fence::cutover::{Cutover, RollbackStep};
use schema_fence::error::RunnerError;
use schema_fence::runner::{Claim, Runner, RunnerOptions};
use schema_fence::store::{self, QueueRequest};
use schema_fence::Error;
use schema_fence_testkit::Cluster;

fn run_batches(runner: &mut Runner, n: usize) {
    for _ in 0..n {
        let Claim::Batch(batch) = runner.claim_next().unwrap() else {
            panic!("expected a batch")
        };
        runner
            .run_sql_batch(&batch, &increment(&batch.job_class_name).unwrap())
            .unwrap();
        runner.complete(&batch, "{}").unwrap();
    }
}

/// A source serving main and ci (`ci_builds` with a serial key), a migration on each with some
/// batches done, split onto its replica; then the new ci works and takes application writes.
fn split_and_work() -> (Cluster, Cluster, String, String) {
    let source = Cluster::start().unwrap();
    source.create_database("app").unwrap();
    let source_url = source.url("app");
    let mut client = connect(&source_url);
    client
        .batch_execute(
            "CREATE TABLE ci_builds (id bigserial PRIMARY KEY, done int NOT NULL DEFAULT 0, note text);
             INSERT INTO ci_builds (done) SELECT 0 FROM generate_series(1, 1000);
             CREATE TABLE projects (id bigint PRIMARY KEY, done int NOT NULL DEFAULT 0);
             INSERT INTO projects (id) SELECT generate_series(1, 1000);",
        )
        .unwrap();
    store::install(&mut client, "main", &["main".into(), "ci".into()], None).unwrap();
    // Only the first 1,000 keys: the rows the application inserts later are not migrated.
    for (table, schema) in [("ci_builds", "gitlab_ci"), ("projects", "gitlab_main")] {
        let mut req = QueueRequest::new(&format!("Backfill_{table}"), table, "id");
        req.restriction = Some(schema.into());
        req.job_interval_seconds = 0;
        req.batch_size = 100;
        req.sub_batch_size = 100;
        req.pause_ms = 0;
        req.batch_max_value = Some(1000);
        store::queue(&mut client, &gitlab_dictionary(), &req).unwrap();
    }
    let mut main = Runner::new(
        &source_url,
        "main",
        gitlab_topology(),
        RunnerOptions::default(),
    );
    run_batches(&mut main, 4);
    let replica = source.replica().unwrap();
    let target_url = replica.url("app");
    Cutover::new(
        cutover_config(&source_url, &target_url, "ci"),
        gitlab_topology(),
        gitlab_dictionary(),
    )
    .unwrap()
    .execute(|_| {})
    .unwrap();
    // The new ci runs batches of its migration and takes the application's writes.
    let mut ci = Runner::new(
        &target_url,
        "ci",
        gitlab_topology(),
        RunnerOptions::default(),
    );
    run_batches(&mut ci, 3);
    connect(&target_url)
        .batch_execute(
            "INSERT INTO ci_builds (done, note) SELECT 0, 'written on ci' FROM generate_series(1, 5);
             UPDATE ci_builds SET note = 'updated on ci' WHERE id = 7;
             DELETE FROM ci_builds WHERE id = 1005;",
        )
        .unwrap();
    (source, replica, source_url, target_url)
}

fn ci_rows(url: &str) -> Vec<(i64, Option<String>)> {
    connect(url)
        .query(
            "SELECT id, note FROM ci_builds WHERE id > 1000 OR note IS NOT NULL ORDER BY id",
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect()
}

#[test]
fn a_rollback_after_the_split_loses_no_write_and_redoes_no_batch() {
    let (source, _replica, source_url, target_url) = split_and_work();
    let written_on_ci = ci_rows(&target_url);
    assert_eq!(written_on_ci.len(), 5, "{written_on_ci:?}");

    let cutover = Cutover::new(
        cutover_config(&source_url, &target_url, "ci"),
        gitlab_topology(),
        gitlab_dictionary(),
    )
    .unwrap();
    let outcomes = cutover.rollback(|_| {}).unwrap();
    assert_eq!(
        outcomes.iter().map(|o| o.step).collect::<Vec<_>>(),
        RollbackStep::ALL.to_vec()
    );

    // Every write the new ci took is on main.
    assert_eq!(ci_rows(&source_url), written_on_ci);
    assert_eq!(
        identity(&source_url),
        ("main".into(), vec!["main".into(), "ci".into()], 2)
    );
    assert_eq!(identity(&target_url), ("ci".into(), vec![], 2));

    // The sequence is past the target's: the next insert on main does not collide.
    let next: i64 = connect(&source_url)
        .query_one("INSERT INTO ci_builds (done) VALUES (0) RETURNING id", &[])
        .unwrap()
        .get(0);
    assert!(next > 1005, "next id {next}");

    // main finishes the ci migration from where the new ci left it: every key once in all.
    let mut main = Runner::new(
        &source_url,
        "main",
        gitlab_topology(),
        RunnerOptions::default(),
    );
    main.run_sql_until_done(increment).unwrap();
    let counts = connect(&source_url)
        .query_one(
            "SELECT count(*) FILTER (WHERE done = 0), count(*) FILTER (WHERE done = 1), \
             count(*) FILTER (WHERE done > 1) FROM ci_builds WHERE id <= 1000",
            &[],
        )
        .unwrap();
    assert_eq!(
        (
            counts.get::<_, i64>(0),
            counts.get::<_, i64>(1),
            counts.get::<_, i64>(2)
        ),
        (0, 1000, 0)
    );
    assert_eq!(done_counts(&source_url, "projects"), (0, 1000, 0));

    // The retired target refuses its worker, naming it retired.
    let mut ci = Runner::new(
        &target_url,
        "ci",
        gitlab_topology(),
        RunnerOptions::default(),
    );
    let err = ci.claim_next().unwrap_err();
    assert!(
        matches!(err, Error::Runner(RunnerError::MisroutedConnection { .. })),
        "{err}"
    );
    assert!(err.to_string().contains("retired"), "{err}");
    // No replication is left behind.
    let subscriptions: i64 = connect(&source_url)
        .query_one("SELECT count(*) FROM pg_subscription", &[])
        .unwrap()
        .get(0);
    assert_eq!(subscriptions, 0);

    // A second split works afterwards.
    let replica = source.replica().unwrap();
    Cutover::new(
        cutover_config(&source_url, &replica.url("app"), "ci"),
        gitlab_topology(),
        gitlab_dictionary(),
    )
    .unwrap()
    .execute(|_| {})
    .unwrap();
    assert_eq!(
        identity(&source_url),
        ("main".into(), vec!["main".into()], 3)
    );
    assert_eq!(
        identity(&replica.url("app")),
        ("ci".into(), vec!["ci".into()], 3)
    );
}

#[test]
fn a_rollback_killed_after_any_step_ends_consistent_when_run_again() {
    let (_source, _replica, source_url, target_url) = split_and_work();
    let written_on_ci = ci_rows(&target_url);
    for step in RollbackStep::ALL {
        // A fresh process each time, as after a kill.
        let cutover = Cutover::new(
            cutover_config(&source_url, &target_url, "ci"),
            gitlab_topology(),
            gitlab_dictionary(),
        )
        .unwrap();
        cutover.run_rollback_step(step).unwrap();
        // Killed after the work, before the step was recorded: the rerun does it again.
        connect(&source_url)
            .execute(
                "UPDATE schema_fence_cutover_log SET finished_at = NULL WHERE cutover = 'main->ci rollback' \
                 AND step = $1",
                &[&step.name()],
            )
            .unwrap();
        let again = Cutover::new(
            cutover_config(&source_url, &target_url, "ci"),
            gitlab_topology(),
            gitlab_dictionary(),
        )
        .unwrap();
        assert!(
            !again.run_rollback_step(step).unwrap().skipped,
            "{step:?} ran again"
        );
    }
    Cutover::new(
        cutover_config(&source_url, &target_url, "ci"),
        gitlab_topology(),
        gitlab_dictionary(),
    )
    .unwrap()
    .finish_rollback()
    .unwrap();
    assert_eq!(ci_rows(&source_url), written_on_ci);
    assert_eq!(
        identity(&source_url),
        ("main".into(), vec!["main".into(), "ci".into()], 2)
    );
    assert_eq!(identity(&target_url).1, Vec::<String>::new());
    let mut main = Runner::new(
        &source_url,
        "main",
        gitlab_topology(),
        RunnerOptions::default(),
    );
    main.run_sql_until_done(increment).unwrap();
    let twice: i64 = connect(&source_url)
        .query_one(
            "SELECT count(*) FILTER (WHERE done <> 1) FROM ci_builds WHERE id <= 1000",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(
        twice, 0,
        "every key of the ci migration processed exactly once"
    );
}
