//! The cutover checks its target before anything changes: a replica of another primary, a
//! primary, the source itself, or a different replica than the one a logged cutover began with is
//! refused, naming what differs, and neither side is touched.

mod common;

use common::*;
use schema_fence::cutover::{Cutover, Step};
use schema_fence::error::CutoverError;
use schema_fence::{store, Error};
use schema_fence_testkit::Cluster;

/// A primary installed as main serving main and ci, with a ci table.
fn primary() -> (Cluster, String) {
    let cluster = Cluster::start().unwrap();
    cluster.create_database("app").unwrap();
    let url = cluster.url("app");
    let mut client = connect(&url);
    client
        .batch_execute(
            "CREATE TABLE ci_builds (id bigint PRIMARY KEY, done int NOT NULL DEFAULT 0)",
        )
        .unwrap();
    store::install(&mut client, "main", &["main".into(), "ci".into()], None).unwrap();
    (cluster, url)
}

fn cutover(source_url: &str, target_url: &str) -> Cutover {
    Cutover::new(
        cutover_config(source_url, target_url, "ci"),
        gitlab_topology(),
        gitlab_dictionary(),
    )
    .unwrap()
}

/// Whether the source was touched: paused, fenced or locked, or given a cutover log.
fn untouched(url: &str) -> bool {
    let row = connect(url)
        .query_one(
            "SELECT (SELECT claims_paused FROM schema_fence_identity), \
                    to_regclass('schema_fence_cutover_log') IS NULL, \
                    NOT EXISTS (SELECT 1 FROM pg_trigger WHERE tgname IN ('schema_fence_fence', 'schema_fence_lock_writes'))",
            &[],
        )
        .unwrap();
    !row.get::<_, bool>(0) && row.get::<_, bool>(1) && row.get::<_, bool>(2)
}

fn refusal(result: schema_fence::Result<Vec<schema_fence::cutover::StepOutcome>>) -> String {
    match result {
        Err(e @ Error::Cutover(CutoverError::CutoverTarget { .. })) => e.to_string(),
        other => panic!("expected CutoverTargetError, got {other:?}"),
    }
}

#[test]
fn a_replica_of_another_primary_is_refused_and_nothing_changes() {
    let (_source, source_url) = primary();
    let (other, _) = primary();
    let stranger = other.replica().unwrap();
    let message = refusal(cutover(&source_url, &stranger.url("app")).execute(|_| {}));
    assert!(message.contains("system_identifier"), "{message}");
    assert!(
        message.contains("not a replica of this source"),
        "{message}"
    );
    assert!(untouched(&source_url));
    assert!(
        stranger.is_in_recovery().unwrap(),
        "the stranger was not promoted"
    );
}

#[test]
fn a_primary_is_refused_and_nothing_changes() {
    let (_source, source_url) = primary();
    let (_other, other_url) = primary();
    let message = refusal(cutover(&source_url, &other_url).execute(|_| {}));
    assert!(
        message.contains("the target is not in recovery"),
        "{message}"
    );
    assert!(untouched(&source_url));
    assert!(untouched(&other_url));
}

#[test]
fn the_source_itself_is_refused() {
    let (_source, source_url) = primary();
    let message = refusal(cutover(&source_url, &source_url).execute(|_| {}));
    assert!(message.contains("not in recovery"), "{message}");
    assert!(untouched(&source_url));
}

#[test]
fn a_replica_whose_identity_differs_is_refused() {
    let (source, source_url) = primary();
    let replica = source.replica().unwrap();
    // A replica made before a re-stamp of the source would differ the same way.
    connect(&replica.url("app"))
        .query_one("SELECT pg_wal_replay_pause()", &[])
        .unwrap();
    // As the library's own stamp does it (the identity's trigger refuses any other write).
    connect(&source_url)
        .execute(
            &format!(
                "UPDATE public.schema_fence_identity SET epoch = 5 FROM {} WHERE singleton",
                schema_fence::store::schema::STAMP
            ),
            &[],
        )
        .unwrap();
    let message = refusal(cutover(&source_url, &replica.url("app")).execute(|_| {}));
    assert!(
        message.contains("epoch 0") && message.contains("epoch 5"),
        "{message}"
    );
    assert!(untouched(&source_url));
}

#[test]
fn a_rerun_against_another_replica_than_the_logged_one_is_refused() {
    let (source, source_url) = primary();
    let first = source.replica().unwrap();
    let second = source.replica().unwrap();
    let begun = cutover(&source_url, &first.url("app"));
    begun.run_step(Step::Verify).unwrap();
    begun.run_step(Step::Pause).unwrap();
    let other = cutover(&source_url, &second.url("app"));
    let message = refusal(other.execute(|_| {}));
    assert!(message.contains("was begun against"), "{message}");
    assert!(matches!(
        other.rollback(|_| {}),
        Err(Error::Cutover(CutoverError::CutoverTarget { .. }))
    ));
    assert!(second.is_in_recovery().unwrap());
    // The cutover's own target finishes it.
    assert_eq!(
        begun
            .execute(|_| {})
            .unwrap()
            .iter()
            .filter(|o| !o.skipped)
            .count(),
        7
    );
}
