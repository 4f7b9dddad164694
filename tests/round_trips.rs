//! Round trips of a claim and its completion (docs/architecture.md section 7), counted on the
//! wire: the runner reaches the server through a proxy that counts the server's
//! `ReadyForQuery` messages, one per round trip. On GitLab's own tracking tables (the fixture's
//! DDL), installed over.

mod common;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;

use common::*;
use schema_fence::health::HealthOptions;
use schema_fence::optimizer::OptimizerOptions;
use schema_fence::runner::{Batch, Claim, Completion, Decision, Runner, RunnerOptions};
use schema_fence::store::{self, QueueRequest};
use schema_fence::{Dictionary, Topology};

/// A TCP proxy in front of the test server that counts `ReadyForQuery` (`Z`) messages.
struct CountingProxy {
    port: u16,
    ready: Arc<AtomicUsize>,
}

impl CountingProxy {
    fn start(server_port: u16) -> CountingProxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let ready = Arc::new(AtomicUsize::new(0));
        let counter = ready.clone();
        thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { return };
                let server = TcpStream::connect(("127.0.0.1", server_port)).unwrap();
                client.set_nodelay(true).unwrap();
                server.set_nodelay(true).unwrap();
                let (mut client_in, mut server_out) =
                    (client.try_clone().unwrap(), server.try_clone().unwrap());
                thread::spawn(move || {
                    let _ = std::io::copy(&mut client_in, &mut server_out);
                });
                let counter = counter.clone();
                thread::spawn(move || count_server_messages(server, client, &counter));
            }
        });
        CountingProxy { port, ready }
    }

    fn url(&self, database_url: &str) -> String {
        let database = database_url.rsplit('/').next().unwrap();
        format!(
            "postgres://postgres@127.0.0.1:{}/{database}?sslmode=disable",
            self.port
        )
    }

    fn round_trips<T>(&self, work: impl FnOnce() -> T) -> (T, usize) {
        let before = self.ready.load(Ordering::SeqCst);
        let out = work();
        (out, self.ready.load(Ordering::SeqCst) - before)
    }
}

/// Forwards the server's bytes, counting whole messages of type 'Z'.
fn count_server_messages(mut server: TcpStream, mut client: TcpStream, ready: &AtomicUsize) {
    let mut pending: Vec<u8> = Vec::new();
    let mut buf = vec![0u8; 16384];
    loop {
        let n = match server.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        pending.extend_from_slice(&buf[..n]);
        let mut at = 0;
        while pending.len() >= at + 5 {
            let len = u32::from_be_bytes(pending[at + 1..at + 5].try_into().unwrap()) as usize;
            if pending.len() < at + 1 + len {
                break;
            }
            if pending[at] == b'Z' {
                ready.fetch_add(1, Ordering::SeqCst);
            }
            at += 1 + len;
        }
        pending.drain(..at);
        if client.write_all(&buf[..n]).is_err() {
            return;
        }
    }
}

fn server_port(url: &str) -> u16 {
    let config: postgres::Config = url.parse().unwrap();
    config.get_ports()[0]
}

/// GitLab's tables from the fixture's DDL, installed over, with a ci migration of 20 batches.
fn gitlab_ci_database() -> String {
    gitlab_ci_database_with(2000, 0)
}

/// As [`gitlab_ci_database`], over `keys` keys, with the given interval between batches.
fn gitlab_ci_database_with(keys: i64, interval: i64) -> String {
    let url = fresh_database("round_trips");
    let mut client = connect(&url);
    let ddl = std::fs::read_to_string(gitlab_fixtures().join("batched_background_migrations.sql"))
        .unwrap();
    client.batch_execute(&ddl).unwrap();
    client
        .batch_execute(
            "CREATE TABLE ci_builds (id bigint PRIMARY KEY, done int NOT NULL DEFAULT 0)",
        )
        .unwrap();
    client
        .execute(
            "INSERT INTO ci_builds (id) SELECT generate_series(1, $1::bigint)",
            &[&keys],
        )
        .unwrap();
    let dictionary = Dictionary::load(&[gitlab_fixtures().join("gitlab_schemas.yml")]).unwrap();
    store::install(&mut client, "ci", &["ci".to_string()], Some(&dictionary)).unwrap();
    let mut req = QueueRequest::new("BackfillCiBuilds", "ci_builds", "id");
    req.restriction = Some("gitlab_ci".into());
    req.job_interval_seconds = interval;
    req.batch_size = 100;
    req.sub_batch_size = 50;
    req.pause_ms = 0;
    store::queue(&mut client, &dictionary, &req).unwrap();
    url
}

/// A runner without the walk ahead: its walks go on a second connection, through the same
/// proxy, and would count among the runner's own round trips (`tests/walk_ahead.rs` covers it).
fn runner(url: &str) -> Runner {
    let topology = Topology::load(&gitlab_fixtures().join("database_connections")).unwrap();
    let options = RunnerOptions {
        walk_ahead: false,
        ..RunnerOptions::default()
    };
    Runner::new(url, "ci", topology, options)
}

fn claimed(claim: Claim) -> Batch {
    match claim {
        Claim::Batch(batch) => batch,
        other => panic!("expected a batch, got {other:?}"),
    }
}

/// Claims and completes one batch; the round trips of each.
fn claim_and_complete(proxy: &CountingProxy, runner: &mut Runner) -> (usize, usize) {
    let (claim, claim_trips) = proxy.round_trips(|| runner.claim_next().unwrap());
    let batch = claimed(claim);
    let (done, complete_trips) =
        proxy.round_trips(|| runner.complete(&batch, r#"{"timings":{}}"#).unwrap());
    assert_eq!(done, Completion::Recorded);
    (claim_trips, complete_trips)
}

#[test]
fn a_claim_takes_one_round_trip_and_its_completion_one() {
    let url = gitlab_ci_database();
    let proxy = CountingProxy::start(server_port(&url));
    let mut runner = runner(&proxy.url(&url));
    // The first claim fences statement by statement; the second prepares the claim's call.
    claim_and_complete(&proxy, &mut runner);
    claim_and_complete(&proxy, &mut runner);
    for _ in 0..3 {
        let trips = claim_and_complete(&proxy, &mut runner);
        eprintln!("round trips of claim, completion: {trips:?}");
        assert_eq!(trips, (1, 1));
    }
}

/// GitLab's worker's succeeded jobs over the first `jobs` batches, each of them `seconds` long.
fn succeeded_jobs(url: &str, jobs: i64, seconds: f64) {
    connect(url)
        .execute(
            "INSERT INTO batched_background_migration_jobs (created_at, updated_at, started_at, \
             finished_at, batched_background_migration_id, min_value, max_value, batch_size, \
             sub_batch_size, status, attempts, pause_ms) \
             SELECT now() - interval '1 hour', now(), now() - interval '1 hour', \
                    now() - interval '1 hour' + make_interval(secs => $2::float8), m.id, \
                    i * 100 + 1, i * 100 + 100, 100, 50, 3, 1, 0 \
             FROM batched_background_migrations m, generate_series(0, $1::bigint - 1) i",
            &[&jobs, &seconds],
        )
        .unwrap();
}

#[test]
fn without_prepared_statements_as_behind_a_pooler_a_claim_takes_three_and_its_completion_three() {
    let url = gitlab_ci_database();
    let proxy = CountingProxy::start(server_port(&url));
    let mut runner = runner(&format!("{}&prepared_statements=false", proxy.url(&url)));
    claim_and_complete(&proxy, &mut runner);
    for _ in 0..3 {
        let trips = claim_and_complete(&proxy, &mut runner);
        eprintln!("round trips of claim, completion, unprepared: {trips:?}");
        // BEGIN with the SET LOCALs, the call, COMMIT; the completion likewise.
        assert!(trips.0 <= 3 && trips.1 <= 3, "{trips:?}");
    }
}

#[test]
fn behind_a_pooler_a_failed_completion_rolls_back_and_the_next_one_commits() {
    let url = gitlab_ci_database();
    let separator = if url.contains('?') { '&' } else { '?' };
    let mut runner = runner(&format!("{url}{separator}prepared_statements=false"));
    let batch = claimed(runner.claim_next().unwrap());
    // Not JSON: the completion's statement fails inside the transaction.
    assert!(runner.complete(&batch, "{not json").is_err());
    let status = |url: &str| -> i16 {
        connect(url)
            .query_one(
                "SELECT status FROM batched_background_migration_jobs WHERE id = $1",
                &[&batch.job_id],
            )
            .unwrap()
            .get(0)
    };
    assert_eq!(status(&url), 1, "the failed completion changed the job");
    // A transaction left open (aborted) would refuse this one.
    assert_eq!(
        runner.complete(&batch, r#"{"timings":{}}"#).unwrap(),
        Completion::Recorded
    );
    assert_eq!(status(&url), 3, "the completion was not committed");
}

#[test]
fn with_the_health_check_and_the_optimizer_a_claim_and_its_completion_take_three() {
    // GitLab's worker ran 20 batches of 0.2 s at an interval of 1 s: the optimizer decides
    // after every completion from here on (an efficiency of 0.2 grows the batch).
    let url = gitlab_ci_database_with(200_000, 1);
    succeeded_jobs(&url, 20, 0.2);
    let proxy = CountingProxy::start(server_port(&url));
    let mut runner = runner(&proxy.url(&url));
    let health = HealthOptions {
        cache: std::time::Duration::from_mins(10),
        max_replication_lag: None,
        max_replication_lag_bytes: None,
        max_wal_receiver_backlog_bytes: None,
        ..HealthOptions::default()
    };
    runner.set_pace(health, OptimizerOptions::default());
    let mut trips = Vec::new();
    for cycle in 0..5 {
        while !matches!(runner.fetch().unwrap().0.as_slice(), [_]) {
            thread::sleep(std::time::Duration::from_millis(50));
        }
        let (claim, complete) = claim_and_complete(&proxy, &mut runner);
        let decided = runner
            .take_decisions()
            .iter()
            .any(|d| matches!(d, Decision::Optimized { .. }));
        assert!(decided, "cycle {cycle}: the optimizer decided nothing");
        trips.push(claim + complete);
    }
    eprintln!("round trips of claim + completion, with pace: {trips:?}");
    // The first claim fences and reads the indicators; the second prepares the claim's call.
    for (cycle, trips) in trips.iter().enumerate().skip(2) {
        assert!(*trips <= 3, "cycle {cycle}: {trips} round trips");
    }
}

#[test]
fn a_database_installed_before_the_claim_function_still_claims_every_batch() {
    let url = gitlab_ci_database();
    connect(&url)
        .batch_execute("DROP FUNCTION public.schema_fence_claim")
        .unwrap();
    let mut runner = runner(&url);
    let mut ranges = Vec::new();
    while let Claim::Batch(batch) = runner.claim_next().unwrap() {
        ranges.push((batch.min_value, batch.max_value));
        runner.complete(&batch, "{}").unwrap();
    }
    let expected: Vec<(i64, i64)> = (0..20).map(|i| (i * 100 + 1, i * 100 + 100)).collect();
    assert_eq!(ranges, expected);
}

#[test]
fn after_the_identity_changes_the_next_claim_fences_again() {
    let url = gitlab_ci_database();
    let mut runner = runner(&url);
    let first = claimed(runner.claim_next().unwrap());
    runner.complete(&first, "{}").unwrap();
    let second = claimed(runner.claim_next().unwrap());
    runner.complete(&second, "{}").unwrap();
    // The database is stamped as main's now, serving main only: ci is not its to run.
    let mut client = connect(&url);
    let epoch: i64 = client
        .query_one("SELECT epoch FROM public.schema_fence_identity", &[])
        .unwrap()
        .get(0);
    store::identity::stamp(&mut client, "main", &["main".to_string()], epoch + 1).unwrap();
    let claim = runner.claim_next();
    assert!(
        !matches!(claim, Ok(Claim::Batch(_))),
        "a ci batch was claimed on a database that no longer serves ci: {claim:?}"
    );
}

#[test]
fn claims_paused_by_a_cutover_stop_the_next_claim() {
    let url = gitlab_ci_database();
    let mut runner = runner(&url);
    for _ in 0..2 {
        let batch = claimed(runner.claim_next().unwrap());
        runner.complete(&batch, "{}").unwrap();
    }
    store::identity::set_claims_paused(&mut connect(&url), true).unwrap();
    assert_eq!(runner.claim_next().unwrap(), Claim::Paused);
    store::identity::set_claims_paused(&mut connect(&url), false).unwrap();
    assert!(matches!(runner.claim_next().unwrap(), Claim::Batch(_)));
}
