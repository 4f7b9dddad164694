//! The cutover on GitLab's three-database layout (main, ci and sec, ci and sec falling back to
//! main), with partitions, and a second split later.

mod common;

use std::sync::Arc;

use common::*;
use schema_fence::cutover::{self, Cutover};
use schema_fence::runner::{Claim, Runner, RunnerOptions};
use schema_fence::store::{self};
use schema_fence::{Dictionary, Topology};
use schema_fence_testkit::Cluster;

fn topology() -> Topology {
    Topology::load(&gitlab_fixtures().join("database_connections_with_sec")).unwrap()
}

/// GitLab's flat map and its `gitlab_sec` tables (from the db/docs sample).
fn dictionary(dir: &std::path::Path) -> Arc<Dictionary> {
    let sec: Vec<(String, String)> = db_docs_pairs()
        .into_iter()
        .filter(|(_, schema)| schema == "gitlab_sec")
        .collect();
    assert!(!sec.is_empty(), "the fixture has gitlab_sec tables");
    let docs = write_db_docs(dir, &sec);
    Arc::new(Dictionary::load(&[gitlab_fixtures().join("gitlab_schemas.yml"), docs]).unwrap())
}

const TABLES: [(&str, &str); 3] = [
    ("projects", "gitlab_main"),
    ("ci_builds", "gitlab_ci"),
    ("analyzer_project_statuses", "gitlab_sec"),
];

fn strings(list: &[&str]) -> Vec<String> {
    list.iter().map(std::string::ToString::to_string).collect()
}

fn refused(url: &str, sql: &str) -> bool {
    connect(url).batch_execute(sql).is_err()
}

/// A source serving main, ci and sec, each with a table and a migration, and a partitioned ci
/// table with a partition in GitLab's partition schema.
fn source(dictionary: &Dictionary) -> (Cluster, String) {
    let source = Cluster::start().unwrap();
    source.create_database("app").unwrap();
    let url = source.url("app");
    let mut client = connect(&url);
    for (table, _) in TABLES {
        client
            .batch_execute(&format!(
                "CREATE TABLE {table} (id bigint PRIMARY KEY, done int NOT NULL DEFAULT 0);
                 INSERT INTO {table} (id) SELECT generate_series(1, 300);"
            ))
            .unwrap();
    }
    client
        .batch_execute(
            "CREATE SCHEMA gitlab_partitions_dynamic;
             CREATE TABLE ci_job_artifacts (id bigint NOT NULL, partition_id int NOT NULL,
                                            PRIMARY KEY (id, partition_id))
                 PARTITION BY LIST (partition_id);
             CREATE TABLE gitlab_partitions_dynamic.ci_job_artifacts_100
                 PARTITION OF ci_job_artifacts FOR VALUES IN (100);",
        )
        .unwrap();
    store::install(&mut client, "main", &strings(&["main", "ci", "sec"]), None).unwrap();
    for (table, schema) in TABLES {
        queue_backfill(&mut client, dictionary, table, schema, (100, 100));
    }
    (source, url)
}

#[test]
fn splitting_ci_off_leaves_sec_on_main_working_writable_and_unlocked() {
    let dir = tempfile::tempdir().unwrap();
    let dictionary = dictionary(dir.path());
    let (source, source_url) = source(&dictionary);
    let mut main = Runner::new(&source_url, "main", topology(), RunnerOptions::default());
    let Claim::Batch(first) = main.claim_next().unwrap() else {
        panic!("a batch before the split")
    };
    main.run_sql_batch(&first, &increment(&first.job_class_name).unwrap())
        .unwrap();
    main.complete(&first, "{}").unwrap();
    let replica = source.replica().unwrap();
    let target_url = replica.url("app");

    let cutover = Cutover::new(
        cutover_config(&source_url, &target_url, "ci"),
        topology(),
        dictionary.clone(),
    )
    .unwrap();
    let plan = cutover.plan().unwrap();
    let fence = &plan[3].action;
    assert!(
        fence.contains("ci_builds") && fence.contains("ci_job_artifacts_100"),
        "{fence}"
    );
    assert!(!fence.contains("analyzer_project_statuses"), "{fence}");
    cutover.execute(|_| {}).unwrap();

    assert_eq!(
        identity(&source_url),
        ("main".into(), strings(&["main", "sec"]), 1)
    );
    assert_eq!(identity(&target_url), ("ci".into(), strings(&["ci"]), 1));

    // sec still shares main: its worker idles there, main's worker runs sec's migration.
    let mut sec = Runner::new(&source_url, "sec", topology(), RunnerOptions::default());
    assert!(matches!(sec.claim_next().unwrap(), Claim::Idle { .. }));
    main.run_sql_until_done(increment).unwrap();
    assert_eq!(
        done_counts(&source_url, "analyzer_project_statuses"),
        (0, 300, 0)
    );
    assert_eq!(done_counts(&source_url, "projects"), (0, 300, 0));
    let mut ci = Runner::new(&target_url, "ci", topology(), RunnerOptions::default());
    ci.run_sql_until_done(increment).unwrap();
    assert_eq!(done_counts(&target_url, "ci_builds"), (0, 300, 0));

    // The application's sec writes on main go through; ci's tables, partitions included, are locked.
    assert!(!refused(
        &source_url,
        "UPDATE analyzer_project_statuses SET done = done"
    ));
    assert!(refused(&source_url, "UPDATE ci_builds SET done = done"));
    assert!(refused(
        &source_url,
        "INSERT INTO gitlab_partitions_dynamic.ci_job_artifacts_100 VALUES (1, 100)"
    ));
    assert!(refused(
        &source_url,
        "INSERT INTO ci_job_artifacts VALUES (1, 100)"
    ));
    // On the new ci, main's and sec's tables are locked.
    assert!(refused(&target_url, "UPDATE projects SET done = done"));
    assert!(refused(
        &target_url,
        "UPDATE analyzer_project_statuses SET done = done"
    ));
    assert!(!refused(
        &target_url,
        "INSERT INTO ci_job_artifacts VALUES (1, 100)"
    ));

    // Cleanup deletes only what the database no longer serves: sec's rows stay on main.
    let stale = |url: &str| -> Vec<String> {
        cutover::cleanup(&mut connect(url), &topology(), false)
            .unwrap()
            .into_iter()
            .map(|s| s.gitlab_schema)
            .collect()
    };
    assert_eq!(stale(&source_url), strings(&["gitlab_ci"]));
    assert_eq!(stale(&target_url), strings(&["gitlab_main", "gitlab_sec"]));
    drop(replica);
}

#[test]
fn a_partition_created_after_the_cutover_refuses_rows_and_is_locked_fully_once_relocked() {
    let dir = tempfile::tempdir().unwrap();
    let dictionary = dictionary(dir.path());
    let (source, source_url) = source(&dictionary);
    let replica = source.replica().unwrap();
    let cutover = Cutover::new(
        cutover_config(&source_url, &replica.url("app"), "ci"),
        topology(),
        dictionary.clone(),
    )
    .unwrap();
    cutover.execute(|_| {}).unwrap();
    connect(&source_url)
        .batch_execute(
            "CREATE TABLE gitlab_partitions_dynamic.ci_job_artifacts_101 \
             PARTITION OF ci_job_artifacts FOR VALUES IN (101)",
        )
        .unwrap();
    // The parent's row-level lock is cloned onto the new partition...
    assert!(refused(
        &source_url,
        "INSERT INTO gitlab_partitions_dynamic.ci_job_artifacts_101 VALUES (1, 101)"
    ));
    // ...its TRUNCATE is not, until the locks are laid again.
    assert!(!refused(
        &source_url,
        "TRUNCATE gitlab_partitions_dynamic.ci_job_artifacts_101"
    ));
    let locked = cutover::relock(&mut connect(&source_url), &dictionary, &topology()).unwrap();
    assert!(locked
        .iter()
        .any(|r| r.name == "gitlab_partitions_dynamic.ci_job_artifacts_101"));
    assert!(refused(
        &source_url,
        "TRUNCATE gitlab_partitions_dynamic.ci_job_artifacts_101"
    ));
    // The bypass still lets maintenance write, row triggers included.
    let mut client = connect(&source_url);
    let mut tx = client.transaction().unwrap();
    tx.batch_execute(&format!(
        "{}; INSERT INTO ci_job_artifacts VALUES (7, 101)",
        cutover::BYPASS
    ))
    .unwrap();
    tx.commit().unwrap();
    let kept: i64 = connect(&source_url)
        .query_one("SELECT count(*) FROM ci_job_artifacts WHERE id = 7", &[])
        .unwrap()
        .get(0);
    assert_eq!(kept, 1, "a bypassed row write is kept, not skipped");
}

#[test]
fn a_second_split_moves_sec_off_main_later() {
    let dir = tempfile::tempdir().unwrap();
    let dictionary = dictionary(dir.path());
    let (source, source_url) = source(&dictionary);
    let ci_replica = source.replica().unwrap();
    Cutover::new(
        cutover_config(&source_url, &ci_replica.url("app"), "ci"),
        topology(),
        dictionary.clone(),
    )
    .unwrap()
    .execute(|_| {})
    .unwrap();

    let sec_replica = source.replica().unwrap();
    let sec_url = sec_replica.url("app");
    let second = Cutover::new(
        cutover_config(&source_url, &sec_url, "sec"),
        topology(),
        dictionary.clone(),
    )
    .unwrap();
    // Seen once in CI: pg_promote() did not finish within the 30 s promote timeout (a replica's
    // replay can wait max_standby_streaming_delay on a conflict). The runbook's answer to a
    // timed-out step is to run execute again, which resumes; so does this test, once.
    if let Err(e) = second.execute(|_| {}) {
        assert!(
            matches!(
                e,
                schema_fence::Error::Cutover(
                    schema_fence::error::CutoverError::CutoverTimeout { .. }
                )
            ),
            "{e}"
        );
        second.execute(|_| {}).unwrap();
    }
    assert_eq!(
        identity(&source_url),
        ("main".into(), strings(&["main"]), 2)
    );
    assert_eq!(identity(&sec_url), ("sec".into(), strings(&["sec"]), 2));
    let mut sec = Runner::new(&sec_url, "sec", topology(), RunnerOptions::default());
    sec.run_sql_until_done(increment).unwrap();
    assert_eq!(
        done_counts(&sec_url, "analyzer_project_statuses"),
        (0, 300, 0)
    );
    assert!(refused(
        &source_url,
        "UPDATE analyzer_project_statuses SET done = done"
    ));
    assert!(refused(&sec_url, "UPDATE ci_builds SET done = done"));
    assert!(refused(&sec_url, "UPDATE projects SET done = done"));
    assert!(!refused(&source_url, "UPDATE projects SET done = done"));
    drop((ci_replica, sec_replica));
}
