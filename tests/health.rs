//! Health indicators and the batch optimizer, each driven by the real thing: a VACUUM of the
//! table, a long transaction, a bulk insert's WAL, a standby with paused replay, an archive
//! command that fails, and a job whose duration grows with its batch size.

mod common;

use std::time::{Duration, Instant};

use common::*;
use schema_fence::health::{HealthOptions, Signal};
use schema_fence::optimizer::OptimizerOptions;
use schema_fence::runner::{Claim, Decision, Runner, RunnerOptions};
use schema_fence::store::{self, QueueRequest};
use schema_fence::{Dictionary, Topology};
use schema_fence_testkit::{Cluster, ClusterOptions};

fn topology() -> Topology {
    Topology::load(&gitlab_fixtures().join("database_connections")).unwrap()
}

/// `ci_builds` of `rows` rows on `url`, installed as `main` serving main and ci, with one
/// migration queued over it: its id.
fn migration_on(url: &str, rows: i64, batch: i64) -> i64 {
    let mut client = connect(url);
    client
        .batch_execute(&format!(
            "CREATE TABLE ci_builds (id bigint PRIMARY KEY, done int NOT NULL DEFAULT 0);
             INSERT INTO ci_builds (id) SELECT generate_series(1, {rows});"
        ))
        .unwrap();
    let serves = vec!["main".to_string(), "ci".to_string()];
    store::install(&mut client, "main", &serves, None).unwrap();
    let dictionary = Dictionary::load(&[gitlab_fixtures().join("gitlab_schemas.yml")]).unwrap();
    let mut req = QueueRequest::new("BackfillCiBuilds", "ci_builds", "id");
    req.restriction = Some("gitlab_ci".into());
    req.job_interval_seconds = 1;
    req.batch_size = batch;
    req.sub_batch_size = batch;
    req.pause_ms = 0;
    match store::queue(&mut client, &dictionary, &req).unwrap() {
        store::QueueOutcome::Queued { id, .. } => id,
        other @ store::QueueOutcome::AlreadyQueued { .. } => panic!("{other:?}"),
    }
}

/// Every built-in indicator off, read afresh on every claim; `enable` turns one on.
fn only(enable: impl FnOnce(&mut HealthOptions)) -> HealthOptions {
    let mut options = HealthOptions {
        enabled: true,
        cache: Duration::ZERO,
        hold_for: Duration::from_mins(10),
        autovacuum: false,
        max_replication_lag_bytes: None,
        max_replication_lag: None,
        max_wal_receiver_backlog_bytes: None,
        max_wal_rate_bytes: None,
        max_archive_backlog: None,
        max_transaction_age: None,
    };
    enable(&mut options);
    options
}

fn runner(url: &str, health: HealthOptions) -> Runner {
    let mut runner = Runner::new(url, "main", topology(), RunnerOptions::default());
    runner.set_pace(health, OptimizerOptions::default());
    runner
}

/// Claims migration `id` and expects a hold by `indicator`: the signal, and what the row says.
fn expect_hold(runner: &mut Runner, url: &str, id: i64, indicator: &str) -> Signal {
    assert_eq!(runner.claim_migration(id, None).unwrap(), Claim::Nothing);
    let signal = match runner.take_decisions().as_slice() {
        [Decision::Held {
            migration_id,
            signal,
            until,
            ..
        }] => {
            assert_eq!(*migration_id, id);
            assert!(*until > 0.0);
            signal.clone()
        }
        other => panic!("expected one hold, got {other:?}"),
    };
    assert_eq!(signal.indicator, indicator);
    let row = connect(url)
        .query_one(
            "SELECT extract(epoch FROM on_hold_until - now())::float8, schema_fence_hold_reason \
             FROM batched_background_migrations WHERE id = $1",
            &[&id],
        )
        .unwrap();
    let (left, reason): (f64, String) = (row.get(0), row.get(1));
    assert!((590.0..=600.0).contains(&left), "held for {left} s more");
    assert_eq!(reason, signal.reason);
    // On hold, the migration is not fetched (GitLab's rule, the fetch's own).
    assert_eq!(runner.claim_next().unwrap(), Claim::Nothing);
    signal
}

fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_healthy_database_hands_out_the_batch() {
    let url = fresh_database("health_quiet");
    let id = migration_on(&url, 100, 50);
    let mut runner = runner(&url, only(|o| o.autovacuum = true));
    assert!(matches!(
        runner.claim_migration(id, None).unwrap(),
        Claim::Batch(_)
    ));
    assert_eq!(runner.take_decisions(), vec![]);
}

#[test]
fn a_vacuum_of_the_migrations_table_holds_it() {
    let url = fresh_database("health_vacuum");
    let id = migration_on(&url, 20_000, 1000);
    let mut vacuum = connect(&url);
    let cancel = vacuum.cancel_token();
    // Cost-based delay makes the VACUUM sleep after every page, so it is still running below.
    let vacuuming = std::thread::spawn(move || {
        // One statement per call: VACUUM refuses to run in the implicit transaction of several.
        vacuum
            .batch_execute("SET vacuum_cost_delay = '100ms'; SET vacuum_cost_limit = 1")
            .unwrap();
        vacuum.batch_execute("VACUUM ci_builds").err()
    });
    let mut watch = connect(&url);
    wait_for("the VACUUM to start", || {
        watch
            .query_one(
                "SELECT count(*) FROM pg_stat_progress_vacuum WHERE relid = 'ci_builds'::regclass",
                &[],
            )
            .unwrap()
            .get::<_, i64>(0)
            == 1
    });
    let mut runner = runner(&url, only(|o| o.autovacuum = true));
    let signal = expect_hold(&mut runner, &url, id, "autovacuum");
    assert!(
        signal
            .reason
            .starts_with("a VACUUM is running on table ci_builds"),
        "{}",
        signal.reason
    );
    cancel.cancel_query(postgres::NoTls).unwrap();
    assert!(
        vacuuming.join().unwrap().is_some(),
        "the VACUUM was cancelled"
    );
}

#[test]
fn a_long_transaction_holding_back_the_xmin_horizon_holds_it() {
    let url = fresh_database("health_xmin");
    let id = migration_on(&url, 100, 50);
    let mut open = connect(&url);
    open.batch_execute("BEGIN; SELECT txid_current()").unwrap();
    let pid: i32 = open
        .query_one("SELECT pg_backend_pid()", &[])
        .unwrap()
        .get(0);
    std::thread::sleep(Duration::from_millis(1500));
    let mut runner = runner(
        &url,
        only(|o| o.max_transaction_age = Some(Duration::from_secs(1))),
    );
    let signal = expect_hold(&mut runner, &url, id, "long_transaction");
    assert!(
        signal
            .reason
            .starts_with(&format!("transaction of pid {pid} ")),
        "{}",
        signal.reason
    );
    open.batch_execute("ROLLBACK").unwrap();
}

#[test]
fn a_burst_of_wal_from_a_bulk_insert_holds_it() {
    let url = fresh_database("health_wal");
    let id = migration_on(&url, 100, 50);
    let mut runner = runner(&url, only(|o| o.max_wal_rate_bytes = Some(1024.0 * 1024.0)));
    // The first reading only records where the WAL is.
    assert!(matches!(
        runner.claim_migration(id, None).unwrap(),
        Claim::Batch(_)
    ));
    connect(&url)
        .batch_execute("CREATE TABLE filler AS SELECT g, repeat('x', 100) AS pad FROM generate_series(1, 100000) g")
        .unwrap();
    std::thread::sleep(Duration::from_millis(600));
    let signal = expect_hold(&mut runner, &url, id, "wal_rate");
    assert!(
        signal
            .reason
            .contains("bytes of WAL per second (limit 1048576)"),
        "{}",
        signal.reason
    );
}

#[test]
fn a_standby_with_paused_replay_holds_it() {
    let primary = Cluster::start().unwrap();
    primary.create_database("app").unwrap();
    let url = primary.url("app");
    let id = migration_on(&url, 100, 50);
    let standby = primary.replica().unwrap();
    let mut replica = connect(&standby.url("app"));
    replica
        .batch_execute("SELECT pg_wal_replay_pause()")
        .unwrap();
    connect(&url)
        .batch_execute("CREATE TABLE filler AS SELECT g FROM generate_series(1, 50000) g")
        .unwrap();
    let mut watch = connect(&url);
    wait_for("the standby to receive the WAL it does not replay", || {
        watch
            .query_one(
                "SELECT coalesce(max(pg_wal_lsn_diff(sent_lsn, replay_lsn)), 0)::bigint FROM pg_stat_replication",
                &[],
            )
            .unwrap()
            .get::<_, i64>(0)
            > 100_000
    });
    let mut runner = runner(&url, only(|o| o.max_replication_lag_bytes = Some(100_000)));
    let signal = expect_hold(&mut runner, &url, id, "replication_lag");
    assert!(
        signal.reason.contains("bytes of WAL behind (limit 100000)"),
        "{}",
        signal.reason
    );
    replica
        .batch_execute("SELECT pg_wal_replay_resume()")
        .unwrap();
}

/// Small commits on `url` every 20 ms until dropped: WAL the standby receives all the time.
struct Writer {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Writer {
    fn start(url: &str) -> Writer {
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let mut client = connect(url);
        client
            .batch_execute("CREATE TABLE IF NOT EXISTS ticks (at timestamptz)")
            .unwrap();
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            while !flag.load(std::sync::atomic::Ordering::Relaxed) {
                client
                    .batch_execute("INSERT INTO ticks VALUES (now())")
                    .unwrap();
                std::thread::sleep(Duration::from_millis(20));
            }
        });
        Writer {
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

#[test]
fn a_standby_replaying_seconds_behind_holds_it_and_the_receiver_is_not_blamed() {
    let primary = Cluster::start().unwrap();
    primary.create_database("app").unwrap();
    let url = primary.url("app");
    let id = migration_on(&url, 100, 50);
    let standby = primary.replica().unwrap();
    let mut replica = connect(&standby.url("app"));
    // Replay pauses while WAL streams: the primary's lag tracker has seen the standby replay
    // some of it, so the replay lag it reports grows with every second the pause lasts.
    let writer = Writer::start(&url);
    std::thread::sleep(Duration::from_millis(500));
    replica
        .batch_execute("SELECT pg_wal_replay_pause()")
        .unwrap();
    let mut watch = connect(&url);
    wait_for("the standby's replay lag to pass 2 s", || {
        watch
            .query_one(
                "SELECT coalesce(max(extract(epoch FROM replay_lag)), 0)::float8 FROM pg_stat_replication",
                &[],
            )
            .unwrap()
            .get::<_, f64>(0)
            > 2.0
    });
    let mut runner = runner(
        &url,
        only(|o| {
            o.max_replication_lag = Some(Duration::from_secs(2));
            // On too: the receiver keeps up (it writes what it is sent), so it is not named.
            o.max_wal_receiver_backlog_bytes = Some(1024 * 1024);
        }),
    );
    let signal = expect_hold(&mut runner, &url, id, "replication_lag");
    assert!(
        signal.reason.contains(" s behind (limit 2 s)"),
        "{}",
        signal.reason
    );
    drop(writer);
    replica
        .batch_execute("SELECT pg_wal_replay_resume()")
        .unwrap();
}

/// SIGSTOP of a process until dropped (SIGCONT), so a failing test still lets the cluster stop.
struct Stopped(i32);

impl Stopped {
    fn signal(pid: i32, signal: &str) {
        let status = std::process::Command::new("kill")
            .args([signal, &pid.to_string()])
            .status()
            .unwrap();
        assert!(status.success(), "kill {signal} {pid}");
    }

    fn stop(pid: i32) -> Stopped {
        Stopped::signal(pid, "-STOP");
        Stopped(pid)
    }
}

impl Drop for Stopped {
    fn drop(&mut self) {
        Stopped::signal(self.0, "-CONT");
    }
}

#[test]
fn a_standby_whose_wal_receiver_cannot_keep_up_holds_it_naming_the_receiver() {
    let primary = Cluster::start().unwrap();
    primary.create_database("app").unwrap();
    let url = primary.url("app");
    let id = migration_on(&url, 100, 50);
    let standby = primary.replica().unwrap();
    let mut watch = connect(&url);
    wait_for("the standby to stream", || {
        watch
            .query_one(
                "SELECT count(*) FROM pg_stat_replication WHERE state = 'streaming' AND write_lsn IS NOT NULL",
                &[],
            )
            .unwrap()
            .get::<_, i64>(0)
            == 1
    });
    let receiver: i32 = connect(&standby.url("app"))
        .query_one("SELECT pid FROM pg_stat_wal_receiver", &[])
        .unwrap()
        .get(0);
    // The standby's real WAL receiver, stopped: the most saturated a receiver gets. The
    // walsender keeps its connection (wal_sender_timeout is a minute) while WAL piles up.
    let stopped = Stopped::stop(receiver);
    connect(&url)
        .batch_execute("CREATE TABLE filler AS SELECT g, repeat('x', 100) AS pad FROM generate_series(1, 50000) g")
        .unwrap();
    wait_for("WAL the standby has not written", || {
        watch
            .query_one(
                "SELECT coalesce(max(pg_wal_lsn_diff(pg_current_wal_lsn(), write_lsn)), 0)::bigint FROM pg_stat_replication",
                &[],
            )
            .unwrap()
            .get::<_, i64>(0)
            > 1_000_000
    });
    let mut runner = runner(
        &url,
        only(|o| {
            o.max_wal_receiver_backlog_bytes = Some(1_000_000);
            // On too: its standby is as far behind in replay, but the receiver is the cause.
            o.max_replication_lag_bytes = Some(1_000_000);
        }),
    );
    let signal = expect_hold(&mut runner, &url, id, "wal_receiver");
    assert!(
        signal
            .reason
            .contains("bytes of WAL the primary wrote (limit 1000000)"),
        "{}",
        signal.reason
    );
    drop(stopped);
    // Once it runs again the standby catches up, and the migration is not held again.
    wait_for("the standby to catch up", || {
        watch
            .query_one(
                "SELECT coalesce(max(pg_wal_lsn_diff(pg_current_wal_lsn(), replay_lsn)), 0)::bigint FROM pg_stat_replication",
                &[],
            )
            .unwrap()
            .get::<_, i64>(0)
            < 1_000_000
    });
    connect(&url)
        .execute(
            "UPDATE batched_background_migrations SET on_hold_until = NULL WHERE id = $1",
            &[&id],
        )
        .unwrap();
    let claim = runner.claim_migration(id, None).unwrap();
    assert!(
        matches!(claim, Claim::Batch(_)),
        "{claim:?}, {:?}",
        runner.take_decisions()
    );
}

#[test]
fn wal_the_archive_command_fails_to_archive_holds_it() {
    let flag = std::env::temp_dir().join(format!("schema_fence_archive_ok_{}", std::process::id()));
    std::fs::write(&flag, "").unwrap();
    let command = format!("'test -f {}'", flag.display());
    let primary = Cluster::start_with(ClusterOptions {
        settings: vec![
            ("archive_mode".into(), "on".into()),
            ("archive_command".into(), command),
        ],
        ..ClusterOptions::default()
    })
    .unwrap();
    primary.create_database("app").unwrap();
    let url = primary.url("app");
    let id = migration_on(&url, 100, 50);
    let mut db = connect(&url);
    db.batch_execute("SELECT pg_switch_wal()").unwrap();
    wait_for("a segment archived", || {
        db.query_one("SELECT archived_count FROM pg_stat_archiver", &[])
            .unwrap()
            .get::<_, i64>(0)
            > 0
    });
    std::fs::remove_file(&flag).unwrap();
    for _ in 0..3 {
        db.batch_execute("CREATE TEMP TABLE IF NOT EXISTS t (x int); INSERT INTO t VALUES (1); SELECT pg_switch_wal()")
            .unwrap();
    }
    let mut runner = runner(&url, only(|o| o.max_archive_backlog = Some(1)));
    let signal = expect_hold(&mut runner, &url, id, "archive_backlog");
    assert!(
        signal
            .reason
            .contains("WAL segments wait for the archive (limit 1"),
        "{}",
        signal.reason
    );
}

#[test]
fn the_applications_own_signal_holds_it_with_its_reason() {
    let url = fresh_database("health_app");
    let id = migration_on(&url, 100, 50);
    let mut runner = runner(&url, only(|_| {}));
    runner.set_external_signal(Some(Signal {
        indicator: "patroni_apdex".into(),
        reason: "PatroniApdex SLI condition not met".into(),
    }));
    expect_hold(&mut runner, &url, id, "patroni_apdex");
}

#[test]
fn finalizing_does_not_wait_for_health() {
    let url = fresh_database("health_finalize");
    let id = migration_on(&url, 100, 50);
    let mut runner = runner(&url, only(|_| {}));
    runner.set_external_signal(Some(Signal {
        indicator: "app".into(),
        reason: "busy".into(),
    }));
    assert!(matches!(
        runner.claim_to_finalize(id).unwrap(),
        Claim::Batch(_)
    ));
    assert_eq!(runner.take_decisions(), vec![]);
}

#[test]
fn the_optimizer_grows_a_batch_until_its_job_takes_the_target_share_of_the_interval() {
    let url = fresh_database("optimizer");
    let id = migration_on(&url, 2_000_000, 1000);
    let mut runner = runner(&url, only(|_| {}));
    // 0.1 ms per key: with the interval of 1 s, 9,500 keys make GitLab's target of 0.95.
    let statement = "SELECT pg_sleep(($2::bigint - $1::bigint + 1) * 0.0001)";
    let mut changes = Vec::new();
    for _ in 0..48 {
        let Claim::Batch(batch) = runner.claim_migration(id, None).unwrap() else {
            panic!("no batch")
        };
        runner.run_sql_batch(&batch, statement).unwrap();
        runner.complete(&batch, "{}").unwrap();
        for decision in runner.take_decisions() {
            if let Decision::Optimized {
                from,
                to,
                efficiency,
                ..
            } = decision
            {
                changes.push((from, to, efficiency));
            }
        }
    }
    // Nothing is decided before 20 jobs; then every job's decision is on the job row.
    assert_eq!(changes.len(), 48 - 19, "{changes:?}");
    let recorded: i64 = connect(&url)
        .query_one(
            "SELECT count(*) FROM batched_background_migration_jobs WHERE batched_background_migration_id = $1 \
             AND schema_fence_efficiency IS NOT NULL AND schema_fence_next_batch_size IS NOT NULL",
            &[&id],
        )
        .unwrap()
        .get(0);
    assert_eq!(recorded, 48 - 19);
    assert!(changes
        .iter()
        .all(|(from, to, _)| f64::from(*to) <= f64::from(*from) * 1.2 + 1.0));
    let (_, last_size, last_efficiency) = *changes.last().unwrap();
    assert!((0.85..=1.0).contains(&last_efficiency), "{changes:?}");
    // 9,500 keys on an idle machine; fewer on a loaded one, where each job's own overhead counts.
    assert!((3_000..=11_000).contains(&last_size), "{changes:?}");
}
