//! The walk ahead: while a batch runs, a second connection walks to the next batch's end, and
//! the next claim takes that end instead of walking itself, on GitLab's tracking tables.

mod common;

use std::thread;
use std::time::Duration;

use common::*;
use schema_fence::runner::{Claim, Completion, Runner, RunnerOptions};
use schema_fence::store::{self, QueueRequest};
use schema_fence::{Dictionary, Topology};

/// GitLab's tables from the fixture's DDL, and a ci migration over `ci_builds` holding keys
/// 1..=100 and 201..=600, batches of 100.
fn gitlab_ci_database() -> String {
    let url = fresh_database("walk_ahead");
    let mut client = connect(&url);
    let ddl = std::fs::read_to_string(gitlab_fixtures().join("batched_background_migrations.sql"))
        .unwrap();
    client.batch_execute(&ddl).unwrap();
    client
        .batch_execute(
            "CREATE TABLE ci_builds (id bigint PRIMARY KEY, done int NOT NULL DEFAULT 0); \
             INSERT INTO ci_builds (id) SELECT generate_series(1, 100) \
             UNION ALL SELECT generate_series(201, 600)",
        )
        .unwrap();
    let dictionary = Dictionary::load(&[gitlab_fixtures().join("gitlab_schemas.yml")]).unwrap();
    store::install(&mut client, "ci", &["ci".to_string()], Some(&dictionary)).unwrap();
    let mut req = QueueRequest::new("BackfillCiBuilds", "ci_builds", "id");
    req.restriction = Some("gitlab_ci".into());
    req.job_interval_seconds = 0;
    req.batch_size = 100;
    req.sub_batch_size = 50;
    req.pause_ms = 0;
    store::queue(&mut client, &dictionary, &req).unwrap();
    url
}

fn runner(url: &str, walk_ahead: bool) -> Runner {
    let topology = Topology::load(&gitlab_fixtures().join("database_connections")).unwrap();
    let options = RunnerOptions {
        walk_ahead,
        ..RunnerOptions::default()
    };
    Runner::new(url, "ci", topology, options)
}

/// Claims and completes batches until none is left; the ranges claimed, in order.
fn drain(runner: &mut Runner, mut between: impl FnMut(usize)) -> Vec<(i64, i64)> {
    let mut ranges = Vec::new();
    while let Claim::Batch(batch) = runner.claim_next().unwrap() {
        ranges.push((batch.min_value, batch.max_value));
        between(ranges.len());
        assert_ne!(
            runner.complete(&batch, "{}").unwrap(),
            Completion::LeaseLost
        );
    }
    ranges
}

/// The batches' ranges when keys 301..=350 are deleted while the second batch runs (after the
/// walk ahead to the third batch's end has ended).
fn ranges_with_keys_deleted_meanwhile(walk_ahead: bool) -> Vec<(i64, i64)> {
    let url = gitlab_ci_database();
    let mut runner = runner(&url, walk_ahead);
    drain(&mut runner, |claimed| {
        if claimed == 2 {
            thread::sleep(Duration::from_millis(500));
            connect(&url)
                .batch_execute("DELETE FROM ci_builds WHERE id BETWEEN 301 AND 350")
                .unwrap();
        }
    })
}

/// The ranges tile the keys: each starts right after the one before, none overlaps.
fn assert_tiled(ranges: &[(i64, i64)]) {
    for pair in ranges.windows(2) {
        assert_eq!(pair[1].0, pair[0].1 + 1, "{ranges:?}");
    }
}

#[test]
fn the_next_claim_takes_the_end_the_walk_ahead_found() {
    let ahead = ranges_with_keys_deleted_meanwhile(true);
    let walked = ranges_with_keys_deleted_meanwhile(false);
    assert_tiled(&ahead);
    assert_tiled(&walked);
    // The third batch starts at 301 either way. Its own walk, after the delete, ends at the 100th
    // key left (450); the walk ahead ended at the 100th key before the delete (400). Either way
    // every key is in exactly one range.
    assert_eq!(
        walked,
        vec![(1, 100), (101, 300), (301, 450), (451, 550), (551, 600)]
    );
    assert_eq!(
        ahead,
        vec![(1, 100), (101, 300), (301, 400), (401, 500), (501, 600)]
    );
}
