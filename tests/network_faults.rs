//! Network faults on real clusters (docs/faults.md): the server listens on a veth pair into a
//! network namespace of the test's own, a worker runs in that namespace, and the link is cut
//! (`ip link set ... down`: packets lost, no RST) in the middle of its batch.
//!
//! Needs root and iproute2 (bin/test runs as root); elsewhere each test says why it skips, and
//! fails instead when `SCHEMA_FENCE_NETNS=1` demands the namespaces.

mod common;

use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::{fault_options, gitlab_fixtures, link_or_skip};
use schema_fence::error::CutoverError;
use schema_fence::runner::{Claim, Completion, Runner, RunnerOptions};
use schema_fence::store::{self, QueueRequest};
use schema_fence::{Dictionary, Error, Topology};
use schema_fence_testkit::netns::Link;
use schema_fence_testkit::Cluster;

const ROWS: i64 = 1_000;
const BATCH: i64 = 100;
/// The far side's keepalives (libpq's key names: the source server reads the target's URL for
/// the reverse replication). On Linux the core's `tcp_user_timeout` (30 s) still decides when
/// unanswered probes end the connection (docs/faults.md).
const FAST_KEEPALIVES: &str = "keepalives_idle=1&keepalives_interval=1&keepalives_count=2";

/// A cluster listening on 127.0.0.1 and on the link's root-side address.
fn cluster_reached_by(link: &Link) -> Cluster {
    let listen = ["127.0.0.1".to_string(), link.host_address().to_string()];
    Cluster::start_with(fault_options(&listen, link)).expect("start a cluster")
}

fn topology() -> Topology {
    Topology::load(&gitlab_fixtures().join("database_connections")).unwrap()
}

fn connect(url: &str) -> postgres::Client {
    postgres::Client::connect(url, postgres::NoTls).unwrap()
}

/// `ci_builds` of ROWS keys with a `done` counter, installed as ci, one migration of ROWS/BATCH
/// batches queued; returns its id.
fn ci_database(url: &str) -> i64 {
    let mut client = connect(url);
    client
        .batch_execute(&format!(
            "CREATE TABLE ci_builds (id bigint PRIMARY KEY, done int NOT NULL DEFAULT 0);
             INSERT INTO ci_builds (id) SELECT generate_series(1, {ROWS});"
        ))
        .unwrap();
    store::install(&mut client, "ci", &["ci".to_string()], None).unwrap();
    let dictionary = Dictionary::load(&[gitlab_fixtures().join("gitlab_schemas.yml")]).unwrap();
    let mut req = QueueRequest::new("BackfillCiBuilds", "ci_builds", "id");
    req.restriction = Some("gitlab_ci".into());
    req.job_interval_seconds = 0;
    req.batch_size = BATCH;
    req.sub_batch_size = BATCH;
    req.pause_ms = 0;
    match store::queue(&mut client, &dictionary, &req).unwrap() {
        store::QueueOutcome::Queued { id, .. } => id,
        other @ store::QueueOutcome::AlreadyQueued { .. } => panic!("{other:?}"),
    }
}

/// The batch's statement; the first batch sleeps first, so the cut lands inside it.
const SLOW_FIRST_BATCH: &str = "UPDATE ci_builds SET done = done + 1 \
     FROM (SELECT pg_sleep(CASE WHEN $1::bigint = 1 THEN 2 ELSE 0 END)) AS pause \
     WHERE id BETWEEN $1 AND $2";

/// (min, max) of every succeeded job, in key order.
fn succeeded_ranges(url: &str, migration: i64) -> Vec<(i64, i64)> {
    connect(url)
        .query(
            "SELECT min_value, max_value FROM batched_background_migration_jobs \
             WHERE batched_background_migration_id = $1 AND status = 3 ORDER BY min_value",
            &[&migration],
        )
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect()
}

fn done_counts(url: &str) -> Vec<(i64, i32)> {
    connect(url)
        .query("SELECT id, done FROM ci_builds ORDER BY id", &[])
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect()
}

#[test]
fn a_worker_cut_off_mid_batch_loses_its_range_to_another_worker_and_cannot_complete_it() {
    let Some(link) = link_or_skip("the worker cut off mid-batch") else {
        return;
    };
    let cluster = cluster_reached_by(&link);
    cluster.create_database("faults").unwrap();
    let direct = cluster.url("faults");
    let migration = ci_database(&direct);
    let over_link = format!(
        "postgres://postgres@{}:{}/faults?{FAST_KEEPALIVES}",
        link.host_address(),
        cluster.port()
    );
    let lease = Duration::from_secs(3);
    let options = RunnerOptions {
        lease,
        ..RunnerOptions::default()
    };

    // The worker on the far side of the link: claims the first batch, runs it, and after the
    // cut (when its connection has failed) comes back and tries to complete it.
    let (claimed_tx, claimed) = mpsc::channel();
    let (healed_tx, healed) = mpsc::channel::<()>();
    let (noticed_tx, noticed) = mpsc::channel::<()>();
    let far_options = options.clone();
    let far = link
        .spawn(move || {
            let mut runner = Runner::new(&over_link, "ci", topology(), far_options);
            let Claim::Batch(batch) = runner.claim_next().unwrap() else {
                panic!("the far worker found no batch")
            };
            claimed_tx.send((batch.clone(), Instant::now())).unwrap();
            let ran = runner.run_sql_batch(&batch, SLOW_FIRST_BATCH);
            let noticed = Instant::now();
            noticed_tx.send(()).unwrap();
            healed.recv().unwrap();
            let completed = runner.complete(&batch, "{}");
            (ran.map(|_| ()), noticed, completed, Instant::now())
        })
        .unwrap();

    let (first, claimed_at) = claimed.recv().unwrap();
    assert_eq!((first.min_value, first.max_value), (1, BATCH));
    std::thread::sleep(Duration::from_millis(500));
    link.cut().unwrap();
    let cut_at = Instant::now();

    // The worker on this side takes the range over once the lease has expired.
    let mut near = Runner::new(&direct, "ci", topology(), options);
    let takeover = loop {
        match near.claim_next().unwrap() {
            Claim::Batch(batch) if batch.job_id == first.job_id => break batch,
            Claim::Batch(other) => {
                near.run_sql_batch(&other, SLOW_FIRST_BATCH).unwrap();
                near.complete(&other, "{}").unwrap();
            }
            _ => std::thread::sleep(Duration::from_millis(100)),
        }
        assert!(cut_at.elapsed() < Duration::from_secs(30), "no takeover");
    };
    let taken_over_at = Instant::now();
    assert_eq!(takeover.attempts, 2, "the same job, its second attempt");
    near.run_sql_batch(&takeover, SLOW_FIRST_BATCH).unwrap();
    assert!(matches!(
        near.complete(&takeover, "{}").unwrap(),
        Completion::Recorded | Completion::MigrationFinished
    ));

    // The far worker comes back only after it noticed the cut (its keepalives), as a worker
    // cut off longer than its lease would.
    noticed
        .recv_timeout(Duration::from_secs(40))
        .expect("the far worker never noticed the cut");
    link.heal().unwrap();
    let healed_at = Instant::now();
    healed_tx.send(()).unwrap();
    let (ran, noticed_at, completed, answered_at) = far.join().unwrap();

    // The far worker's batch failed with the lost connection, and its completion is refused.
    assert!(
        matches!(
            ran,
            Err(Error::ConnectionLost { .. } | Error::Database { .. })
        ),
        "the far worker's batch: {ran:?}"
    );
    assert_eq!(completed.unwrap(), Completion::LeaseLost);

    while let Claim::Batch(batch) = near.claim_next().unwrap() {
        near.run_sql_batch(&batch, SLOW_FIRST_BATCH).unwrap();
        near.complete(&batch, "{}").unwrap();
    }

    // Every range succeeded once, by one lease; every key processed, and only the cut-off
    // range possibly twice (the far worker's statement may have committed before the cut was
    // noticed: jobs are idempotent, a range is redone only after such a loss).
    let ranges = succeeded_ranges(&direct, migration);
    let expected: Vec<(i64, i64)> = (0..ROWS / BATCH)
        .map(|i| (i * BATCH + 1, (i + 1) * BATCH))
        .collect();
    assert_eq!(ranges, expected);
    for (id, done) in done_counts(&direct) {
        let allowed = if id <= BATCH { 1..=2 } else { 1..=1 };
        assert!(allowed.contains(&done), "key {id} done {done} times");
    }

    eprintln!(
        "worker cut off mid-batch: lease {:.1}s; cut {:.1}s after the claim; the far worker \
         noticed after {:.1}s; the range was taken over {:.1}s after the cut; the far worker's \
         completion was refused {:.2}s after the heal",
        lease.as_secs_f64(),
        (cut_at - claimed_at).as_secs_f64(),
        noticed_at.saturating_duration_since(cut_at).as_secs_f64(),
        (taken_over_at - cut_at).as_secs_f64(),
        (answered_at - healed_at).as_secs_f64()
    );
}

#[test]
fn a_cutover_cut_off_after_the_promotion_fails_its_step_and_a_rerun_resumes_to_the_split() {
    use common::{
        cutover_config, gitlab_dictionary, gitlab_topology, identity, missing_keys, queue_backfill,
        seed_shared_database, wait_for_keys, Writer,
    };
    use schema_fence::cutover::{Cutover, Step};

    let Some(link) = link_or_skip("the cutover cut off after the promotion") else {
        return;
    };
    let source = cluster_reached_by(&link);
    source.create_database("app").unwrap();
    let direct_source = source.url("app");
    let mut client = connect(&direct_source);
    seed_shared_database(&mut client, 100);
    client
        .batch_execute("CREATE TABLE ci_pipelines (id bigint PRIMARY KEY)")
        .unwrap();
    queue_backfill(
        &mut client,
        &gitlab_dictionary(),
        "ci_builds",
        "gitlab_ci",
        (50, 50),
    );
    // The replica keeps the primary's settings: it listens on the link's address too.
    let target = source.replica().unwrap();
    let direct_target = target.url("app");
    // The application stays on this side: it writes to whichever side takes ci's writes.
    let writer = Writer::start(&direct_source, &direct_target, "ci_pipelines", 1_000_000);
    let over_link = |cluster: &Cluster| {
        format!(
            "postgres://postgres@{}:{}/app?connect_timeout=3&{FAST_KEEPALIVES}",
            link.host_address(),
            cluster.port()
        )
    };
    let config = cutover_config(&over_link(&source), &over_link(&target), "ci");
    let (promoted_tx, promoted) = mpsc::channel::<()>();
    let (go_tx, go) = mpsc::channel::<()>();
    let (failed_tx, failed) = mpsc::channel();
    let (healed_tx, healed) = mpsc::channel::<()>();
    let far = link
        .spawn(move || {
            let cutover = Cutover::new(config, gitlab_topology(), gitlab_dictionary()).unwrap();
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
            promoted_tx.send(()).unwrap();
            go.recv().unwrap();
            let started = Instant::now();
            let stamp = cutover.run_step(Step::Stamp);
            failed_tx
                .send((stamp.map(|_| ()), started.elapsed()))
                .unwrap();
            healed.recv().unwrap();
            // As an operator would: run execute again until it gets through (the first try
            // may still find no route while the neighbour entries are relearnt).
            let started = Instant::now();
            let mut tries = 0;
            let rerun = loop {
                tries += 1;
                match cutover.execute(|_| {}) {
                    Err(Error::Cutover(CutoverError::CutoverConnection { .. })) if tries < 5 => {
                        std::thread::sleep(Duration::from_millis(500));
                    }
                    other => break other,
                }
            };
            let ran = rerun.map(|outcomes| {
                outcomes
                    .iter()
                    .filter(|o| !o.skipped)
                    .map(|o| o.step)
                    .collect::<Vec<_>>()
            });
            (ran, started.elapsed(), tries)
        })
        .unwrap();

    promoted.recv().unwrap();
    link.cut().unwrap();
    go_tx.send(()).unwrap();
    let (stamp, noticed) = failed.recv().unwrap();
    // Cut off, the step fails (a connection error after connect_timeout), nothing recorded.
    let err = stamp.unwrap_err();
    assert!(
        matches!(
            err,
            Error::Cutover(CutoverError::CutoverConnection { .. })
                | Error::ConnectionLost { .. }
                | Error::Database { .. }
        ),
        "{err}"
    );
    assert_eq!(identity(&direct_source).1, vec!["main", "ci"]);
    link.heal().unwrap();
    healed_tx.send(()).unwrap();
    let (rerun, recovered, tries) = far.join().unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let acked = writer.stop();
    assert_eq!(
        rerun.unwrap(),
        vec![Step::Stamp, Step::LockWrites, Step::Resume],
        "the rerun resumes at the step the cut stopped"
    );
    let (source_name, source_serves, source_epoch) = identity(&direct_source);
    let (target_name, target_serves, target_epoch) = identity(&direct_target);
    assert_eq!(
        (source_name.as_str(), source_serves),
        ("main", vec!["main".to_string()])
    );
    assert_eq!(
        (target_name.as_str(), target_serves),
        ("ci", vec!["ci".to_string()])
    );
    assert_eq!(source_epoch, target_epoch);
    // Every write acknowledged on either side is on the target, and back on the source through
    // the reverse replication.
    assert!(
        !acked.on_source.is_empty() && !acked.on_target.is_empty(),
        "{acked:?}"
    );
    let all = acked.all();
    assert_eq!(
        missing_keys(&direct_target, "ci_pipelines", &all),
        Vec::<i64>::new()
    );
    let back = wait_for_keys(
        &direct_source,
        "ci_pipelines",
        &all,
        Duration::from_secs(20),
    );
    assert!(
        back.is_empty(),
        "not replicated back to the source: {back:?}\n{}",
        common::reverse_replication_report(&direct_source, &source)
    );
    eprintln!(
        "cutover cut off after the promotion: the stamp step failed {:.1}s after the cut ({err}); \
         the rerun after the heal finished the split in {:.1}s ({tries} tries); writes \
         acknowledged {} on the source, {} on the target, {} refused; none lost",
        noticed.as_secs_f64(),
        recovered.as_secs_f64(),
        acked.on_source.len(),
        acked.on_target.len(),
        acked.refused
    );
}
