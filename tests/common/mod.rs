//! Helpers shared by the integration tests: fixture paths and small dictionaries on disk.
#![allow(dead_code)]

mod faults;
mod split;
mod writer;
#[allow(unused_imports)] // not every test binary uses them
pub use faults::*;
#[allow(unused_imports)]
pub use split::*;
#[allow(unused_imports)]
pub use writer::*;

use std::fs;
use std::path::{Path, PathBuf};

/// `../shared/fixtures/gitlab`, beside the repository.
pub fn gitlab_fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/fixtures/gitlab")
}

pub fn write(dir: &Path, relative: &str, text: &str) -> PathBuf {
    let path = dir.join(relative);
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(&path, text).unwrap();
    path
}

/// The `db_docs_tables.tsv` pairs, as (table, schema).
pub fn db_docs_pairs() -> Vec<(String, String)> {
    let text = fs::read_to_string(gitlab_fixtures().join("db_docs_tables.tsv")).unwrap();
    text.lines()
        .skip(1)
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let (t, s) = l.split_once('\t').unwrap();
            (t.to_string(), s.trim().to_string())
        })
        .collect()
}

/// Writes the pairs as a db/docs directory in GitLab's file shape.
pub fn write_db_docs(dir: &Path, pairs: &[(String, String)]) -> PathBuf {
    let docs = dir.join("db/docs");
    for (table, schema) in pairs {
        write(
            &docs,
            &format!("{table}.yml"),
            &format!(
                "---\ntable_name: {table}\nclasses:\n- Some::Model\nfeature_categories:\n- database\n\
                 description: Rows of {table}\nintroduced_by_url: https://example.com/mr/1\n\
                 milestone: '16.0'\ngitlab_schema: {schema}\n"
            ),
        );
    }
    docs
}

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock};

use schema_fence_testkit::{self as cluster, Cluster};

/// One throwaway cluster per test binary (or the server of `DATABASE_URL`), stopped at exit.
static SERVER: OnceLock<Mutex<Option<Cluster>>> = OnceLock::new();
static DATABASES: AtomicUsize = AtomicUsize::new(0);

extern "C" fn stop_server() {
    if let Some(lock) = SERVER.get() {
        if let Ok(mut guard) = lock.lock() {
            drop(guard.take());
        }
    }
}

fn server_url(database: &str) -> String {
    if let Ok(url) = std::env::var("DATABASE_URL") {
        return url;
    }
    let lock = SERVER.get_or_init(|| {
        let cluster = Cluster::start().expect("start a throwaway PostgreSQL cluster");
        // SAFETY: registering a plain extern "C" function; the test harness exits through exit().
        unsafe { libc_atexit(stop_server) };
        Mutex::new(Some(cluster))
    });
    lock.lock().unwrap().as_ref().unwrap().url(database)
}

extern "C" {
    #[link_name = "atexit"]
    fn libc_atexit(f: extern "C" fn()) -> i32;
}

/// A URL of a new, empty database on the test server.
pub fn fresh_database(prefix: &str) -> String {
    let base = server_url("postgres");
    let n = DATABASES.fetch_add(1, Ordering::SeqCst);
    let name = format!("{prefix}_{}_{n}", std::process::id());
    cluster::create_database(&base, &name).unwrap();
    let mut config: postgres::Config = base.parse().unwrap();
    config.dbname(&name);
    // Rebuild the URL with the new database name.
    match base.rfind('/') {
        Some(i) if !base[i + 1..].contains('@') => format!("{}/{name}", &base[..i]),
        _ => format!("{base}/{name}"),
    }
}

pub fn connect(url: &str) -> postgres::Client {
    postgres::Client::connect(url, postgres::NoTls).unwrap()
}

/// The status code of migration `id` (GitLab's: 0 paused, 1 active, 3 finished, 4 failed, ...).
pub fn migration_status(url: &str, id: i64) -> i16 {
    connect(url)
        .query_one(
            "SELECT status FROM batched_background_migrations WHERE id = $1",
            &[&id],
        )
        .unwrap()
        .get(0)
}

/// `[keys never done, done once, done more than once]` of a table with a `done` counter.
pub fn done_counts(url: &str, table: &str) -> (i64, i64, i64) {
    let row = connect(url)
        .query_one(
            &format!(
                "SELECT count(*) FILTER (WHERE done = 0), count(*) FILTER (WHERE done = 1), \
                 count(*) FILTER (WHERE done > 1) FROM {table}"
            ),
            &[],
        )
        .unwrap();
    (row.get(0), row.get(1), row.get(2))
}
