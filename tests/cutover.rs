//! The cutover on a real primary and its streaming replica.

mod common;

use std::time::Duration;

use common::*;
use schema_fence::cutover::{self, Cutover, Promotion, Step};
use schema_fence::error::CutoverError;
use schema_fence::runner::{Claim, Runner, RunnerOptions};
use schema_fence::store::{self};
use schema_fence::Error;
use schema_fence_testkit::Cluster;

/// A source cluster serving main and ci with `ci_builds` and projects, a migration queued on each,
/// and a streaming replica.
fn split_setup() -> (Cluster, Cluster, String, String) {
    let source = Cluster::start().unwrap();
    source.create_database("app").unwrap();
    let url = source.url("app");
    let mut client = connect(&url);
    seed_shared_database(&mut client, 1000);
    for (table, schema) in [("ci_builds", "gitlab_ci"), ("projects", "gitlab_main")] {
        queue_backfill(&mut client, &gitlab_dictionary(), table, schema, (100, 50));
    }
    let replica = source.replica().unwrap();
    let replica_url = replica.url("app");
    (source, replica, url, replica_url)
}

#[test]
fn a_split_in_the_middle_of_the_migrations_continues_each_on_its_own_database() {
    let (_source, _replica, source_url, target_url) = split_setup();
    let mut main = Runner::new(
        &source_url,
        "main",
        gitlab_topology(),
        RunnerOptions::default(),
    );
    // Half of each migration runs before the cutover, on the shared database.
    for _ in 0..10 {
        let Claim::Batch(batch) = main.claim_next().unwrap() else {
            panic!()
        };
        main.run_sql_batch(&batch, &increment(&batch.job_class_name).unwrap())
            .unwrap();
        main.complete(&batch, "{}").unwrap();
    }
    let cutover = Cutover::new(
        cutover_config(&source_url, &target_url, "ci"),
        gitlab_topology(),
        gitlab_dictionary(),
    )
    .unwrap();
    let plan = cutover.plan().unwrap();
    assert_eq!(plan.len(), 9);
    assert!(plan.iter().all(|s| !s.done));
    let steps = cutover.execute(|_| {}).unwrap();
    assert_eq!(
        steps.iter().map(|s| s.step).collect::<Vec<_>>(),
        Step::ALL.to_vec()
    );

    // Identities.
    let source_identity = store::identity::require(&mut connect(&source_url)).unwrap();
    let target_identity = store::identity::require(&mut connect(&target_url)).unwrap();
    assert_eq!(
        (
            source_identity.name.as_str(),
            source_identity.serves.clone(),
            source_identity.epoch
        ),
        ("main", vec!["main".to_string()], 1)
    );
    assert_eq!(
        (
            target_identity.name.as_str(),
            target_identity.serves.clone(),
            target_identity.epoch
        ),
        ("ci", vec!["ci".to_string()], 1)
    );

    // Each side finishes its own migration; neither touches the other's.
    let mut ci = Runner::new(
        &target_url,
        "ci",
        gitlab_topology(),
        RunnerOptions::default(),
    );
    ci.run_sql_until_done(increment).unwrap();
    main.run_sql_until_done(increment).unwrap();
    assert_eq!(done_counts(&target_url, "ci_builds"), (0, 1000, 0));
    assert_eq!(done_counts(&source_url, "projects"), (0, 1000, 0));
    let source_ci_jobs: i64 = connect(&source_url)
        .query_one(
            "SELECT count(*) FROM batched_background_migration_jobs j JOIN batched_background_migrations m \
             ON m.id = j.batched_background_migration_id WHERE m.gitlab_schema = 'gitlab_ci' AND j.claimed_epoch = 1",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(
        source_ci_jobs, 0,
        "no ci batch claimed on the source after the stamp"
    );

    // Writes to the other database's tables are refused, unless bypassed.
    let err = connect(&source_url)
        .execute("UPDATE ci_builds SET done = 5", &[])
        .unwrap_err();
    assert!(
        err.as_db_error()
            .unwrap()
            .message()
            .contains("ci_builds is write-locked on database main"),
        "{err}"
    );
    let err = connect(&target_url)
        .execute("DELETE FROM projects", &[])
        .unwrap_err();
    assert!(
        err.as_db_error().unwrap().message().contains("projects"),
        "{err}"
    );
    let mut bypass = connect(&source_url);
    // A session-wide SET of the setting lets nothing through, not even the old "on".
    bypass
        .batch_execute(&format!("SET {} = on", cutover::BYPASS_SETTING))
        .unwrap();
    assert!(bypass
        .execute("UPDATE ci_builds SET done = done WHERE id = 1", &[])
        .is_err());
    let mut tx = bypass.transaction().unwrap();
    tx.batch_execute(cutover::BYPASS).unwrap();
    tx.execute("UPDATE ci_builds SET done = done WHERE id = 1", &[])
        .unwrap();
    tx.commit().unwrap();
    // The next transaction of the same session is locked again.
    assert!(bypass
        .execute("UPDATE ci_builds SET done = done WHERE id = 1", &[])
        .is_err());

    // Stale rows: listed, then deleted only when asked.
    let listed = cutover::cleanup(&mut connect(&source_url), &gitlab_topology(), false).unwrap();
    assert_eq!(
        listed
            .iter()
            .map(|s| s.gitlab_schema.as_str())
            .collect::<Vec<_>>(),
        vec!["gitlab_ci"]
    );
    assert_eq!(
        cutover::cleanup(&mut connect(&source_url), &gitlab_topology(), false).unwrap(),
        listed
    );
    cutover::cleanup(&mut connect(&source_url), &gitlab_topology(), true).unwrap();
    assert!(
        cutover::cleanup(&mut connect(&source_url), &gitlab_topology(), false)
            .unwrap()
            .is_empty()
    );
    let target_stale =
        cutover::cleanup(&mut connect(&target_url), &gitlab_topology(), false).unwrap();
    assert_eq!(
        target_stale
            .iter()
            .map(|s| s.gitlab_schema.as_str())
            .collect::<Vec<_>>(),
        vec!["gitlab_main"]
    );

    // Running execute again finds every step done.
    assert!(cutover.execute(|_| {}).unwrap().iter().all(|s| s.skipped));
}

#[test]
fn a_catch_up_timeout_leaves_the_source_paused_and_a_rollback_lifts_the_pause() {
    let (_source, replica, source_url, target_url) = split_setup();
    let mut cfg = cutover_config(&source_url, &target_url, "ci");
    cfg.catch_up_timeout = Duration::from_millis(500);
    let cutover = Cutover::new(cfg, gitlab_topology(), gitlab_dictionary()).unwrap();
    for step in [Step::Verify, Step::Pause, Step::Drain] {
        cutover.run_step(step).unwrap();
    }
    // A replica that cannot replay: its server is stopped... so stop replay instead.
    let mut target = connect(&target_url);
    target.execute("SELECT pg_wal_replay_pause()", &[]).unwrap();
    // The pause is only requested until replay reaches it: without waiting, the update below
    // could still be replayed and the catch-up succeed.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while std::time::Instant::now() < deadline {
        let state: String = target
            .query_one("SELECT pg_get_wal_replay_pause_state()", &[])
            .unwrap()
            .get(0);
        if state == "paused" {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    cutover.run_step(Step::Fence).unwrap();
    connect(&source_url)
        .execute("UPDATE projects SET done = done WHERE id = 1", &[])
        .unwrap();
    let fenced = connect(&source_url)
        .execute("UPDATE ci_builds SET done = done WHERE id = 1", &[])
        .unwrap_err();
    assert_eq!(
        fenced.code().map(postgres::error::SqlState::code),
        Some(cutover::FENCE_SQLSTATE)
    );
    let err = cutover.run_step(Step::CatchUp).unwrap_err();
    assert!(
        matches!(err, Error::Cutover(CutoverError::CutoverTimeout { .. })),
        "{err}"
    );
    assert!(err.to_string().contains("stays paused"), "{err}");
    let mut main = Runner::new(
        &source_url,
        "main",
        gitlab_topology(),
        RunnerOptions::default(),
    );
    assert_eq!(main.claim_next().unwrap(), Claim::Paused);
    assert!(matches!(
        cutover.run_step(Step::Promote),
        Err(Error::Cutover(CutoverError::CutoverOrder { .. }))
    ));

    cutover.rollback(|_| {}).unwrap();
    assert!(matches!(main.claim_next().unwrap(), Claim::Batch(_)));
    connect(&source_url)
        .execute("UPDATE ci_builds SET done = done WHERE id = 1", &[])
        .expect("the rollback lifted the fence");
    assert!(cutover.plan().unwrap().iter().all(|s| !s.done));
    drop(replica);
}

#[test]
fn a_rollback_after_the_promotion_of_a_cutover_that_is_not_reversible_is_refused() {
    let (_source, _replica, source_url, target_url) = split_setup();
    let mut cfg = cutover_config(&source_url, &target_url, "ci");
    cfg.reversible = false;
    let cutover = Cutover::new(cfg, gitlab_topology(), gitlab_dictionary()).unwrap();
    for step in [
        Step::Verify,
        Step::Pause,
        Step::Drain,
        Step::Fence,
        Step::CatchUp,
        Step::Promote,
    ] {
        cutover.run_step(step).unwrap();
    }
    let err = cutover.rollback(|_| {}).unwrap_err();
    assert!(
        matches!(
            err,
            Error::Cutover(CutoverError::CutoverNotReversible { .. })
        ),
        "{err}"
    );
    assert!(err.to_string().contains("reversible: false"), "{err}");
    // An interrupted cutover resumes where it stopped.
    let outcomes = cutover.execute(|_| {}).unwrap();
    let ran: Vec<Step> = outcomes
        .iter()
        .filter(|o| !o.skipped)
        .map(|o| o.step)
        .collect();
    assert_eq!(ran, vec![Step::Stamp, Step::LockWrites, Step::Resume]);
}

#[test]
fn an_external_promotion_is_waited_for_and_writes_can_be_unlocked_again() {
    let (_source, _replica, source_url, target_url) = split_setup();
    let mut cfg = cutover_config(&source_url, &target_url, "ci");
    cfg.promotion = Promotion::External;
    let cutover = Cutover::new(cfg, gitlab_topology(), gitlab_dictionary()).unwrap();
    for step in [
        Step::Verify,
        Step::Pause,
        Step::Drain,
        Step::Fence,
        Step::CatchUp,
    ] {
        cutover.run_step(step).unwrap();
    }
    // Patroni's part, played by another connection a moment later.
    let promoter = {
        let target_url = target_url.clone();
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(300));
            connect(&target_url)
                .execute("SELECT pg_promote()", &[])
                .unwrap();
        })
    };
    let outcome = cutover.run_step(Step::Promote).unwrap();
    promoter.join().unwrap();
    assert!(
        outcome.detail.starts_with("promoted externally"),
        "{}",
        outcome.detail
    );
    assert!(outcome.duration >= Duration::from_millis(250));
    for step in [Step::Stamp, Step::LockWrites, Step::Resume] {
        cutover.run_step(step).unwrap();
    }
    assert!(connect(&source_url)
        .execute("UPDATE ci_builds SET done = 1", &[])
        .is_err());
    let unlocked = cutover::unlock_writes(&mut connect(&source_url)).unwrap();
    assert_eq!(unlocked, vec!["ci_builds".to_string()]);
    connect(&source_url)
        .execute("UPDATE ci_builds SET done = 1", &[])
        .unwrap();
}
