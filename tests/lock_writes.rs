//! Laying the write locks again after a database's role changed: as GitLab's `TablesLocker`, the
//! tables of the schemas it serves now are unlocked, those of the others locked.

mod common;

use common::*;
use schema_fence::cutover::lock_writes;
use schema_fence::{Dictionary, Topology};

fn refused(url: &str, sql: &str) -> bool {
    connect(url).batch_execute(sql).is_err()
}

fn lock(url: &str, serves: &[&str]) -> Vec<String> {
    let dictionary = Dictionary::load(&[gitlab_fixtures().join("gitlab_schemas.yml")]).unwrap();
    let topology = Topology::load(&gitlab_fixtures().join("database_connections")).unwrap();
    let serves: Vec<String> = serves
        .iter()
        .map(std::string::ToString::to_string)
        .collect();
    lock_writes(&mut connect(url), &dictionary, &topology, "app", &serves)
        .unwrap()
        .into_iter()
        .map(|r| r.name)
        .collect()
}

#[test]
fn locking_again_unlocks_what_the_database_serves_now_and_a_shared_database_unlocks_all() {
    let url = fresh_database("relock");
    connect(&url)
        .batch_execute(
            "CREATE TABLE projects (id bigint PRIMARY KEY);
             CREATE TABLE ci_builds (id bigint PRIMARY KEY);",
        )
        .unwrap();
    assert_eq!(lock(&url, &["main"]), vec!["ci_builds"]);
    assert!(refused(&url, "INSERT INTO ci_builds VALUES (1)"));

    assert_eq!(lock(&url, &["ci"]), vec!["projects"]);
    assert!(!refused(&url, "INSERT INTO ci_builds VALUES (2)"));
    assert!(refused(&url, "INSERT INTO projects VALUES (1)"));

    assert_eq!(lock(&url, &["main", "ci"]), Vec::<String>::new());
    assert!(!refused(&url, "INSERT INTO projects VALUES (3)"));
    assert!(!refused(&url, "INSERT INTO ci_builds VALUES (3)"));
}
