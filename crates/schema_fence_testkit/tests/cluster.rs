//! The throwaway PostgreSQL helper against real servers: start, databases, replica, restart,
//! kill, cleanup.

use std::net::TcpStream;
use std::time::{Duration, Instant};

use schema_fence_testkit::{create_database, describe_pg_error, Cluster, ClusterOptions};

fn connect(url: &str) -> postgres::Client {
    postgres::Client::connect(url, postgres::NoTls)
        .unwrap_or_else(|e| panic!("could not connect to {url}: {e}"))
}

/// Polls `check` until it returns true or `timeout` passes.
fn eventually(timeout: Duration, mut check: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if check() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    check()
}

fn accepts(port: u16) -> bool {
    TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), Duration::from_secs(1)).is_ok()
}

#[test]
fn starts_creates_databases_and_answers_queries() {
    let cluster = Cluster::start().expect("start a cluster");
    assert!(cluster.port() > 0);
    assert!(cluster.data_dir().join("PG_VERSION").is_file());
    assert!(cluster.dir().join("owner.pid").is_file());
    assert_eq!(
        cluster.url("main"),
        format!("postgres://postgres@127.0.0.1:{}/main", cluster.port())
    );

    cluster.create_database("main").unwrap();
    let hostile = "we\"ird db; DROP DATABASE main";
    cluster.create_database(hostile).unwrap();

    let mut client = connect(&cluster.url("main"));
    let row = client
        .query_one(
            "SELECT current_database(), current_setting('fsync'), current_setting('wal_level')",
            &[],
        )
        .unwrap();
    assert_eq!(row.get::<_, String>(0), "main");
    assert_eq!(row.get::<_, String>(1), "off");
    assert_eq!(row.get::<_, String>(2), "logical");

    let mut weird = connect(&cluster.url(hostile));
    let name: String = weird
        .query_one("SELECT current_database()", &[])
        .unwrap()
        .get(0);
    assert_eq!(name, hostile);

    let err = cluster.create_database("main").unwrap_err();
    assert!(err.to_string().contains("already exists"), "{err}");
    assert!(!cluster.is_in_recovery().unwrap());
}

#[test]
fn create_database_works_on_any_server_url() {
    let cluster = Cluster::start().unwrap();
    create_database(&cluster.url("postgres"), "by_url").unwrap();
    connect(&cluster.url("by_url"));
    let err = create_database(&cluster.url("postgres"), "").unwrap_err();
    assert!(err.to_string().contains("invalid database name"), "{err}");
}

#[test]
fn a_replica_streams_rows_written_on_the_primary() {
    let primary = Cluster::start().unwrap();
    primary.create_database("app").unwrap();
    let mut writer = connect(&primary.url("app"));
    writer
        .batch_execute("CREATE TABLE items (id bigint PRIMARY KEY); INSERT INTO items VALUES (1)")
        .unwrap();

    let replica = primary.replica().expect("make a replica");
    assert_ne!(replica.port(), primary.port());
    assert_ne!(replica.dir(), primary.dir());
    assert!(replica.is_in_recovery().unwrap());

    writer.execute("INSERT INTO items VALUES (2)", &[]).unwrap();
    let mut reader = connect(&replica.url("app"));
    let streamed = eventually(Duration::from_secs(30), || {
        reader
            .query_one("SELECT count(*) FROM items", &[])
            .map(|row| row.get::<_, i64>(0) == 2)
            .unwrap_or(false)
    });
    assert!(
        streamed,
        "the replica did not receive the second row within 30 s"
    );
    let err = reader
        .execute("INSERT INTO items VALUES (3)", &[])
        .unwrap_err();
    let message = describe_pg_error(&err);
    assert!(message.contains("read-only"), "{message}");
}

#[test]
fn restart_and_kill_keep_the_data() {
    // The default synchronous_commit=off may lose the last commits to a kill, as a crash would.
    let cluster = Cluster::start_with(ClusterOptions {
        settings: vec![("synchronous_commit".into(), "on".into())],
        ..ClusterOptions::default()
    })
    .unwrap();
    let mut client = connect(&cluster.url("postgres"));
    let sync: String = client
        .query_one("SELECT current_setting('synchronous_commit')", &[])
        .unwrap()
        .get(0);
    assert_eq!(sync, "on");
    client
        .batch_execute("CREATE TABLE kept (v text); INSERT INTO kept VALUES ('before')")
        .unwrap();
    drop(client);

    cluster.restart().expect("restart");
    let mut client = connect(&cluster.url("postgres"));
    let v: String = client.query_one("SELECT v FROM kept", &[]).unwrap().get(0);
    assert_eq!(v, "before");
    client
        .execute("INSERT INTO kept VALUES ('after restart')", &[])
        .unwrap();

    cluster.kill().expect("kill");
    assert!(client.query_one("SELECT 1", &[]).is_err());
    cluster.restart().expect("restart after kill");
    let mut client = connect(&cluster.url("postgres"));
    let n: i64 = client
        .query_one("SELECT count(*) FROM kept", &[])
        .unwrap()
        .get(0);
    assert_eq!(n, 2);

    cluster.stop().unwrap();
    cluster.stop().unwrap(); // stopping a stopped server is fine
    assert!(!accepts(cluster.port()));
    cluster.restart().expect("start again after stop");
    assert!(accepts(cluster.port()));
}

#[test]
fn drop_stops_the_server_and_removes_the_directory() {
    let cluster = Cluster::start().unwrap();
    let (dir, port) = (cluster.dir().to_path_buf(), cluster.port());
    assert!(accepts(port));
    drop(cluster);
    assert!(!dir.exists(), "{} still exists", dir.display());
    assert!(!accepts(port), "port {port} still accepts connections");

    let cluster = Cluster::start().unwrap();
    let (dir, port) = (cluster.dir().to_path_buf(), cluster.port());
    cluster.destroy().unwrap();
    assert!(!dir.exists());
    assert!(!accepts(port));
}

#[test]
fn drop_cleans_up_when_a_test_panics() {
    let seen = std::sync::Mutex::new(None);
    let result = std::panic::catch_unwind(|| {
        let cluster = Cluster::start().unwrap();
        *seen.lock().unwrap() = Some((cluster.dir().to_path_buf(), cluster.port()));
        panic!("a failing test");
    });
    assert!(result.is_err());
    let (dir, port) = seen.into_inner().unwrap().unwrap();
    assert!(!dir.exists());
    assert!(!accepts(port));
}

/// A process killed with SIGKILL leaves its cluster running; the next `start` stops and removes it.
#[test]
fn start_sweeps_clusters_of_dead_processes() {
    let exe = std::env::current_exe().unwrap();
    let mut child = std::process::Command::new(exe)
        .args(["--exact", "orphan_maker", "--ignored", "--nocapture"])
        .env("SCHEMA_FENCE_ORPHAN_MAKER", "1")
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // The child prints its cluster's directory and port, then sleeps until killed.
    let mut stdout = std::io::BufReader::new(child.stdout.take().unwrap());
    let (dir, port) = loop {
        let mut line = String::new();
        let n = std::io::BufRead::read_line(&mut stdout, &mut line).unwrap();
        assert!(n > 0, "the orphan maker exited early");
        if let Some(rest) = line.trim().strip_prefix("ORPHAN ") {
            let (dir, port) = rest.rsplit_once(' ').unwrap();
            break (std::path::PathBuf::from(dir), port.parse::<u16>().unwrap());
        }
    };
    child.kill().unwrap(); // SIGKILL: no Drop runs
    child.wait().unwrap();
    assert!(dir.exists() && accepts(port));

    let _fresh = Cluster::start().unwrap();
    assert!(
        !dir.exists(),
        "the orphan {} was not removed",
        dir.display()
    );
    assert!(
        !accepts(port),
        "the orphan's server on port {port} still runs"
    );
}

#[test]
#[ignore = "run by start_sweeps_clusters_of_dead_processes in a child process"]
fn orphan_maker() {
    if std::env::var_os("SCHEMA_FENCE_ORPHAN_MAKER").is_none() {
        return;
    }
    let cluster = Cluster::start().unwrap();
    println!("ORPHAN {} {}", cluster.dir().display(), cluster.port());
    std::thread::sleep(Duration::from_secs(120));
}
