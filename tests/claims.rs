//! Workers claiming side by side (docs/architecture.md section 7): a claim locks only the migration it takes,
//! so eight workers on eight migrations cover every key range once, none twice, none skipped.

mod common;

use std::collections::HashMap;
use std::sync::{Arc, Barrier};
use std::thread;

use common::*;
use schema_fence::runner::{Claim, Runner, RunnerOptions};
use schema_fence::store::{self, QueueRequest};
use schema_fence::{Dictionary, Topology};

const WORKERS: usize = 8;
const TABLES: [&str; 8] = [
    "ci_builds",
    "ci_pipelines",
    "ci_stages",
    "ci_job_artifacts",
    "ci_runners",
    "ci_variables",
    "ci_triggers",
    "ci_sources_pipelines",
];
const KEYS: i64 = 6_000;

/// A `ci` database with the eight tables (gaps in their keys: every third key is missing) and a
/// migration queued on each, batches of 200 keys in sub-batches of 50.
fn ci_database() -> String {
    let url = fresh_database("claims");
    let mut client = connect(&url);
    store::install(&mut client, "ci", &["ci".to_string()], None).unwrap();
    let dictionary = Dictionary::load(&[gitlab_fixtures().join("gitlab_schemas.yml")]).unwrap();
    for table in TABLES {
        client
            .batch_execute(&format!(
                "CREATE TABLE {table} (id bigint PRIMARY KEY, done int NOT NULL DEFAULT 0);
                 INSERT INTO {table} (id) SELECT i FROM generate_series(1, {KEYS}) i WHERE i % 3 <> 0;"
            ))
            .unwrap();
        let mut req = QueueRequest::new(&format!("Backfill{table}"), table, "id");
        req.restriction = Some("gitlab_ci".into());
        req.job_interval_seconds = 0;
        req.batch_size = 200;
        req.sub_batch_size = 50;
        req.pause_ms = 0;
        store::queue(&mut client, &dictionary, &req).unwrap();
    }
    url
}

/// Claims, runs and completes batches until a claim finds nothing; returns (batches, empty
/// claims).
fn work(url: &str, start: &Barrier) -> (usize, usize) {
    let topology = Topology::load(&gitlab_fixtures().join("database_connections")).unwrap();
    let mut runner = Runner::new(url, "ci", topology, RunnerOptions::default());
    runner.fence().unwrap();
    start.wait();
    let (mut batches, mut empty) = (0, 0);
    loop {
        match runner.claim_next().unwrap() {
            Claim::Batch(batch) => {
                let statement = format!(
                    "UPDATE {} SET done = done + 1 WHERE id BETWEEN $1 AND $2",
                    batch.table_name
                );
                let report = runner.run_sql_batch(&batch, &statement).unwrap();
                runner.complete(&batch, &report.metrics_json()).unwrap();
                batches += 1;
            }
            Claim::Nothing if migrations_left(url) == 0 => return (batches, empty),
            Claim::Nothing => empty += 1,
            other => panic!("{other:?}"),
        }
    }
}

fn migrations_left(url: &str) -> i64 {
    connect(url)
        .query_one(
            "SELECT count(*) FROM batched_background_migrations WHERE status <> 3",
            &[],
        )
        .unwrap()
        .get(0)
}

#[test]
fn eight_workers_on_eight_migrations_claim_every_key_range_once() {
    let url = ci_database();
    let start = Arc::new(Barrier::new(WORKERS));
    let workers: Vec<_> = (0..WORKERS)
        .map(|_| {
            let (url, start) = (url.clone(), start.clone());
            thread::spawn(move || work(&url, &start))
        })
        .collect();
    let results: Vec<(usize, usize)> = workers.into_iter().map(|w| w.join().unwrap()).collect();
    let batches: usize = results.iter().map(|r| r.0).sum();
    assert!(
        results.iter().all(|r| r.0 > 0),
        "every worker got batches: {results:?}"
    );

    for table in TABLES {
        assert_eq!(
            done_counts(&url, table),
            (0, KEYS - KEYS / 3, 0),
            "{table}: keys never done, done once, done more than once"
        );
    }
    // The ranges handed out tile each migration's keys: each starts right after the previous one.
    let mut client = connect(&url);
    let rows = client
        .query(
            "SELECT j.batched_background_migration_id, j.min_value, j.max_value, m.min_value, \
             m.max_value, j.status FROM batched_background_migration_jobs j \
             JOIN batched_background_migrations m ON m.id = j.batched_background_migration_id \
             ORDER BY j.batched_background_migration_id, j.min_value",
            &[],
        )
        .unwrap();
    assert_eq!(rows.len(), batches, "one job row per batch run");
    let mut next: HashMap<i64, i64> = HashMap::new();
    for row in &rows {
        let (migration, first, last, migration_min, status): (i64, i64, i64, i64, i16) =
            (row.get(0), row.get(1), row.get(2), row.get(3), row.get(5));
        let expected = *next.entry(migration).or_insert(migration_min);
        assert_eq!(
            first, expected,
            "migration {migration}: a gap or an overlap"
        );
        assert!(last >= first);
        assert_eq!(status, 3, "migration {migration}: every batch succeeded");
        next.insert(migration, last + 1);
    }
    for row in client
        .query(
            "SELECT id, max_value FROM batched_background_migrations",
            &[],
        )
        .unwrap()
    {
        let (migration, max): (i64, i64) = (row.get(0), row.get(1));
        assert_eq!(
            next[&migration],
            max + 1,
            "migration {migration} reached its end"
        );
    }
}
