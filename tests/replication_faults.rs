//! The replication cut on real clusters (docs/faults.md): the primary runs "on another host" (a
//! network namespace of the test's own), its replica on this side streams over a veth pair, and
//! the link is cut during the catch-up, during the promotion, and, after a split, under the
//! reverse replication during a rollback. An application writer runs throughout; workers run the
//! migrations before and after. After each fault a rerun ends consistent: every key range done
//! once, by one lease, on the database that owns it, and no acknowledged write lost.
//!
//! Needs root and iproute2 (bin/test runs as root); elsewhere each test says why it skips.

mod common;

use std::time::{Duration, Instant};

use common::*;
use schema_fence::cutover::{Cutover, CutoverConfig, Step};
use schema_fence::error::CutoverError;
use schema_fence::runner::{Claim, Runner, RunnerOptions};
use schema_fence::Error;
use schema_fence_testkit::netns::Link;

const ROWS: i64 = 200;
const BATCH: i64 = 50;
/// The writer's table (`gitlab_ci`: it moves) and its first key.
const WRITES: &str = "ci_pipelines";
const FIRST_WRITE: i64 = 1_000_000;
/// The cutover's bounded waits in these tests; the defaults are 60 s (docs/faults.md).
const CATCH_UP_TIMEOUT: Duration = Duration::from_secs(4);

/// The shared database (`ci_builds` and projects of ROWS keys, a backfill of each in batches of
/// BATCH, the writer's table), on a primary across the link, with a replica here; the main
/// worker has done two batches.
fn shared_database_across(link: &Link) -> ReplicatedPair {
    let pair = replicated_pair(link, |client| {
        seed_shared_database(client, ROWS);
        client
            .batch_execute(&format!("CREATE TABLE {WRITES} (id bigint PRIMARY KEY)"))
            .unwrap();
        for (table, schema) in [("ci_builds", "gitlab_ci"), ("projects", "gitlab_main")] {
            queue_backfill(client, &gitlab_dictionary(), table, schema, (BATCH, BATCH));
        }
    });
    let done = work_off(&mut runner(&pair.source_url, "main"), Some(2));
    assert_eq!(done.len(), 2);
    pair
}

fn runner(url: &str, database: &str) -> Runner {
    Runner::new(url, database, gitlab_topology(), RunnerOptions::default())
}

fn config(pair: &ReplicatedPair) -> CutoverConfig {
    CutoverConfig {
        catch_up_timeout: CATCH_UP_TIMEOUT,
        ..cutover_config(&pair.source_url, &pair.target_url, "ci")
    }
}

fn cutover(pair: &ReplicatedPair) -> Cutover {
    Cutover::new(config(pair), gitlab_topology(), gitlab_dictionary()).unwrap()
}

/// Runs and completes batches until none is left (or `limit` are done); the job classes done.
fn work_off(runner: &mut Runner, limit: Option<usize>) -> Vec<String> {
    let mut done = Vec::new();
    while limit.is_none_or(|n| done.len() < n) {
        let Claim::Batch(batch) = runner.claim_next().unwrap() else {
            break;
        };
        let statement = increment(&batch.job_class_name).unwrap();
        runner.run_sql_batch(&batch, &statement).unwrap();
        runner.complete(&batch, "{}").unwrap();
        done.push(batch.job_class_name.clone());
    }
    done
}

/// (min, max, attempts) of every succeeded job of `class`, in key order.
fn succeeded(url: &str, class: &str) -> Vec<(i64, i64, i32)> {
    connect(url)
        .query(
            "SELECT j.min_value, j.max_value, j.attempts::int FROM batched_background_migration_jobs j \
             JOIN batched_background_migrations m ON m.id = j.batched_background_migration_id \
             WHERE m.job_class_name = $1 AND j.status = 3 ORDER BY j.min_value",
            &[&class],
        )
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect()
}

/// Every batch range of a table of ROWS keys, succeeded once by one lease (the first attempt),
/// and every key done exactly once, where `url` says.
fn assert_done_once(url: &str, table: &str) {
    let expected: Vec<(i64, i64, i32)> = (0..ROWS / BATCH)
        .map(|i| (i * BATCH + 1, (i + 1) * BATCH, 1))
        .collect();
    assert_eq!(
        succeeded(url, &format!("Backfill_{table}")),
        expected,
        "{table}"
    );
    assert_eq!(
        done_counts(url, table),
        (0, ROWS, 0),
        "{table}: never, once, twice"
    );
}

/// Polls until `done` (up to `timeout`); how long it took.
fn time_until(timeout: Duration, mut done: impl FnMut() -> bool) -> Duration {
    let started = Instant::now();
    while !done() {
        assert!(started.elapsed() < timeout, "not within {timeout:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
    started.elapsed()
}

fn replayed_source_wal(pair: &ReplicatedPair) -> bool {
    let lsn: String = connect(&pair.source_url)
        .query_one("SELECT pg_current_wal_lsn()::text", &[])
        .unwrap()
        .get(0);
    connect(&pair.target.url("app"))
        .query_one(
            "SELECT pg_last_wal_replay_lsn() >= $1::text::pg_lsn",
            &[&lsn],
        )
        .unwrap()
        .get(0)
}

/// `execute` again, as an operator would, until it gets through (a connection right after the
/// heal may still fail); the steps it ran.
fn execute_until_done(cutover: &Cutover) -> (Vec<Step>, u32) {
    let mut tries = 0;
    loop {
        tries += 1;
        match cutover.execute(|_| {}) {
            Ok(outcomes) => {
                let ran = outcomes.iter().filter(|o| !o.skipped).map(|o| o.step);
                return (ran.collect(), tries);
            }
            Err(e) if tries < 5 => {
                eprintln!("rerun {tries}: {e}");
                std::thread::sleep(Duration::from_millis(500));
            }
            Err(e) => panic!("the rerun after the heal: {e}"),
        }
    }
}

/// After a split: the workers finish on each side, the main worker never takes a ci batch, every
/// range and key is done once where it belongs, and every acknowledged write is on the target,
/// and on the source too once the reverse replication has applied it.
fn assert_split_consistent(pair: &ReplicatedPair, acked: &Acknowledged) {
    let target = pair.target.url("app");
    work_off(&mut runner(&target, "ci"), None);
    let on_source = work_off(&mut runner(&pair.source_url, "main"), None);
    assert!(
        on_source.iter().all(|class| class == "Backfill_projects"),
        "the source ran a ci batch after the split: {on_source:?}"
    );
    assert_done_once(&target, "ci_builds");
    assert_done_once(&pair.source_url, "projects");
    assert_eq!(identity(&pair.source_url).1, vec!["main"]);
    assert_eq!(identity(&target).1, vec!["ci"]);
    let all = acked.all();
    assert!(
        !acked.on_source.is_empty() && !acked.on_target.is_empty(),
        "{acked:?}"
    );
    assert_eq!(
        missing_keys(&target, WRITES, &all),
        Vec::<i64>::new(),
        "lost on the target"
    );
    let back = wait_for_keys(&pair.source_url, WRITES, &all, Duration::from_secs(20));
    assert!(
        back.is_empty(),
        "not replicated back to the source: {back:?}\n{}",
        reverse_replication_report(&pair.source_url, &pair.source)
    );
}

#[test]
fn a_replica_cut_off_during_the_catch_up_times_the_step_out_and_a_rerun_after_the_heal_splits() {
    let Some(link) = link_or_skip("the replica cut off during the catch-up") else {
        return;
    };
    let pair = shared_database_across(&link);
    let writer = Writer::start(
        &pair.source_url,
        &pair.target.url("app"),
        WRITES,
        FIRST_WRITE,
    );
    std::thread::sleep(Duration::from_millis(300));
    let cutover = cutover(&pair);
    for step in [Step::Verify, Step::Pause, Step::Drain] {
        cutover.run_step(step).unwrap();
    }
    // Cut before the fence: the replica misses the fence and the last acknowledged writes.
    link.cut().unwrap();
    let cut_at = Instant::now();
    std::thread::sleep(Duration::from_millis(300));
    cutover.run_step(Step::Fence).unwrap();
    let err = cutover.run_step(Step::CatchUp).unwrap_err();
    let noticed = cut_at.elapsed();
    assert!(
        matches!(err, Error::Cutover(CutoverError::CutoverTimeout { .. })),
        "{err}"
    );
    let target = pair.target.url("app");
    assert!(
        pair.target.is_in_recovery().unwrap(),
        "never promoted short of the fence"
    );
    assert_eq!(identity(&pair.source_url).1, vec!["main", "ci"]);
    let stranded = keys_only_on(&pair.source_url, &target, WRITES);
    assert!(
        !stranded.is_empty(),
        "the cut kept no acknowledged write from the replica"
    );

    link.heal().unwrap();
    let replayed = time_until(Duration::from_mins(1), || replayed_source_wal(&pair));
    let rerun_started = Instant::now();
    let (ran, tries) = execute_until_done(&cutover);
    let rerun = rerun_started.elapsed();
    assert_eq!(
        ran,
        [
            Step::CatchUp,
            Step::Promote,
            Step::Stamp,
            Step::LockWrites,
            Step::Resume
        ],
        "the rerun resumes at the catch-up"
    );
    std::thread::sleep(Duration::from_millis(300));
    let acked = writer.stop();
    assert_split_consistent(&pair, &acked);
    eprintln!(
        "replica cut off during the catch-up: the step timed out {:.1}s after the cut \
         (catch_up_timeout {:.0}s); after the heal the replica replayed the source's WAL in \
         {:.1}s; the rerun finished the split in {:.1}s ({tries} tries); writes acknowledged \
         {} on the source ({} of them not on the replica at the timeout), {} on the target, {} \
         refused; none lost",
        noticed.as_secs_f64(),
        CATCH_UP_TIMEOUT.as_secs_f64(),
        replayed.as_secs_f64(),
        rerun.as_secs_f64(),
        acked.on_source.len(),
        stranded.len(),
        acked.on_target.len(),
        acked.refused,
    );
}

#[test]
fn a_replica_cut_off_during_the_promotion_fails_the_step_before_any_write_and_a_rerun_splits() {
    let Some(link) = link_or_skip("the replica cut off during the promotion") else {
        return;
    };
    let pair = shared_database_across(&link);
    let target = pair.target.url("app");
    let writer = Writer::start(&pair.source_url, &target, WRITES, FIRST_WRITE);
    std::thread::sleep(Duration::from_millis(300));
    // The target's URL with only the TCP user timeout the README suggests lowering (with
    // SCHEMA_FENCE_FAULT_DEFAULTS=1 with none: the core's 30 s, a test of over 60 s); the cut is
    // silent, as behind a router: only a timeout can notice it.
    let defaults = std::env::var("SCHEMA_FENCE_FAULT_DEFAULTS").as_deref() == Ok("1");
    let base = pair.target_url.split('?').next().unwrap();
    let (url, bound) = if defaults {
        (base.to_string(), Duration::from_secs(45))
    } else {
        (
            format!("{base}?tcp_user_timeout=8000"),
            Duration::from_secs(20),
        )
    };
    let cutover = Cutover::new(
        CutoverConfig {
            target_url: url,
            ..config(&pair)
        },
        gitlab_topology(),
        gitlab_dictionary(),
    )
    .unwrap();
    for step in [Step::Verify, Step::Pause, Step::Drain] {
        cutover.run_step(step).unwrap();
    }
    // The source writes its WAL late (asynchronous commits, as the testkit's clusters have, and
    // a WAL writer that waits 10 s): the fence and the writes acknowledged before it must reach
    // the replica all the same before the promotion.
    let mut source = connect(&pair.source_url);
    source
        .batch_execute("ALTER SYSTEM SET wal_writer_delay = '10s'")
        .unwrap();
    source.batch_execute("SELECT pg_reload_conf()").unwrap();
    std::thread::sleep(Duration::from_millis(300));
    for step in [Step::Fence, Step::CatchUp] {
        cutover.run_step(step).unwrap();
    }
    link.pin_neighbour_in_namespace().unwrap();
    link.cut().unwrap();
    let cut_at = Instant::now();
    // pg_promote() needs no primary; the reverse subscription (source → target) cannot connect.
    let err = cutover.run_step(Step::Promote).unwrap_err();
    let noticed = cut_at.elapsed();
    // The subscription's connection attempt ignores connect_timeout (the server's walreceiver
    // library waits on its own): the TCP user timeout bounds it, the URL's or the core's.
    assert!(
        noticed < bound,
        "the promotion noticed the cut after {noticed:?}: {err}"
    );
    assert!(!pair.target.is_in_recovery().unwrap(), "promoted");
    let refused_on_target =
        connect(&target).execute(&format!("INSERT INTO {WRITES} (id) VALUES (1)"), &[]);
    assert!(
        refused_on_target.is_err(),
        "the promoted target takes a write before its reverse replication exists ({err})"
    );
    assert_eq!(identity(&pair.source_url).1, vec!["main", "ci"]);

    link.heal().unwrap();
    let healed_at = Instant::now();
    let (ran, tries) = execute_until_done(&cutover);
    let rerun = healed_at.elapsed();
    assert_eq!(
        ran,
        [Step::Promote, Step::Stamp, Step::LockWrites, Step::Resume],
        "the rerun resumes at the promotion"
    );
    std::thread::sleep(Duration::from_millis(300));
    let acked = writer.stop();
    assert_split_consistent(&pair, &acked);
    eprintln!(
        "replica cut off during the promotion: the step failed {:.1}s after the cut ({err}); \
         the rerun after the heal finished the split in {:.1}s ({tries} tries); writes \
         acknowledged {} on the source, {} on the target, {} refused; none lost",
        noticed.as_secs_f64(),
        rerun.as_secs_f64(),
        acked.on_source.len(),
        acked.on_target.len(),
        acked.refused,
    );
}

#[test]
fn a_rollback_whose_reverse_replication_is_cut_waits_fenced_and_a_rerun_loses_no_write() {
    let Some(link) = link_or_skip("the reverse replication cut during a rollback") else {
        return;
    };
    let pair = shared_database_across(&link);
    let target = pair.target.url("app");
    let writer = Writer::start(&pair.source_url, &target, WRITES, FIRST_WRITE);
    std::thread::sleep(Duration::from_millis(300));
    let cutover = cutover(&pair);
    cutover.execute(|_| {}).unwrap();
    // The new ci works, then the link is cut: what the target takes now stays there.
    work_off(&mut runner(&target, "ci"), Some(1));
    link.cut().unwrap();
    let cut_at = Instant::now();
    std::thread::sleep(Duration::from_millis(500));
    let err = cutover.rollback(|_| {}).unwrap_err();
    let noticed = cut_at.elapsed();
    assert!(
        matches!(err, Error::Cutover(CutoverError::CutoverTimeout { .. })),
        "{err}"
    );
    // Stopped in its catch-up: fenced on the target, still locked on the source.
    for url in [&pair.source_url, &target] {
        let write = connect(url).execute(&format!("INSERT INTO {WRITES} (id) VALUES (2)"), &[]);
        assert!(
            write.is_err(),
            "a side takes writes during the rollback's catch-up"
        );
    }
    assert_eq!(identity(&target).1, vec!["ci"]);
    let stranded = keys_only_on(&target, &pair.source_url, WRITES);
    assert!(
        !stranded.is_empty(),
        "the cut kept no acknowledged write from the source"
    );

    link.heal().unwrap();
    let healed_at = Instant::now();
    let mut tries = 0;
    let ran = loop {
        tries += 1;
        match cutover.rollback(|_| {}) {
            Ok(outcomes) => break outcomes,
            Err(e) if tries < 5 => eprintln!("rollback rerun {tries}: {e}"),
            Err(e) => panic!("the rollback rerun after the heal: {e}"),
        }
    };
    let recovered = healed_at.elapsed();
    assert_eq!(
        ran.iter().find(|o| !o.skipped).map(|o| o.step.name()),
        Some("catch_up"),
        "the rerun resumes at the catch-up"
    );
    std::thread::sleep(Duration::from_millis(300));
    let acked = writer.stop();

    // Rolled back: the source owns ci again and finishes its migration, each range once.
    assert_eq!(identity(&pair.source_url).1, vec!["main", "ci"]);
    assert!(identity(&target).1.is_empty(), "the target is retired");
    let on_source = work_off(&mut runner(&pair.source_url, "main"), None);
    assert!(!on_source.is_empty());
    assert_done_once(&pair.source_url, "ci_builds");
    assert_done_once(&pair.source_url, "projects");
    assert!(!acked.on_target.is_empty(), "{acked:?}");
    let missing = missing_keys(&pair.source_url, WRITES, &acked.all());
    assert_eq!(
        missing,
        Vec::<i64>::new(),
        "acknowledged writes lost by the rollback"
    );
    eprintln!(
        "reverse replication cut during a rollback: its catch-up timed out {:.1}s after the cut \
         (catch_up_timeout {:.0}s); the rerun after the heal finished the rollback in {:.1}s \
         ({tries} tries); writes acknowledged {} on the source, {} on the target ({} of them not \
         on the source at the timeout), {} refused; none lost",
        noticed.as_secs_f64(),
        CATCH_UP_TIMEOUT.as_secs_f64(),
        recovered.as_secs_f64(),
        acked.on_source.len(),
        acked.on_target.len(),
        stranded.len(),
        acked.refused,
    );
}
