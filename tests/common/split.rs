//! What the cutover tests share: GitLab's two-database layout and table map, a cutover's
//! configuration, the `Backfill_<table>` SQL jobs and the identity of a database.

use std::sync::Arc;
use std::time::Duration;

use schema_fence::cutover::{CutoverConfig, Promotion};
use schema_fence::store::{self, QueueRequest};
use schema_fence::{Dictionary, Topology};

use super::{connect, gitlab_fixtures};

/// GitLab's main and ci (ci falling back to main), from the fixture.
pub fn gitlab_topology() -> Topology {
    Topology::load(&gitlab_fixtures().join("database_connections")).unwrap()
}

/// GitLab's flat table map, from the fixture.
pub fn gitlab_dictionary() -> Arc<Dictionary> {
    Arc::new(Dictionary::load(&[gitlab_fixtures().join("gitlab_schemas.yml")]).unwrap())
}

/// A cutover of `target` off main, with `pg_promote()`, reversible, and short bounded waits.
pub fn cutover_config(source_url: &str, target_url: &str, target: &str) -> CutoverConfig {
    CutoverConfig {
        source_url: source_url.into(),
        target_url: target_url.into(),
        source: "main".into(),
        target: target.into(),
        promotion: Promotion::PgPromote,
        drain_timeout: Duration::from_secs(10),
        catch_up_timeout: Duration::from_secs(20),
        promote_timeout: Duration::from_secs(30),
        reversible: true,
    }
}

/// The SQL job of `Backfill_<table>`: one more on `done` of every key of the sub-batch.
pub fn increment(class: &str) -> Option<String> {
    let table = class.strip_prefix("Backfill_")?;
    Some(format!(
        "UPDATE {table} SET done = done + 1 WHERE id BETWEEN $1 AND $2"
    ))
}

/// Queues `Backfill_<table>` restricted to `schema`, with no interval or pause.
pub fn queue_backfill(
    client: &mut postgres::Client,
    dictionary: &Dictionary,
    table: &str,
    schema: &str,
    (batch_size, sub_batch_size): (i64, i64),
) {
    let mut req = QueueRequest::new(&format!("Backfill_{table}"), table, "id");
    req.restriction = Some(schema.into());
    req.job_interval_seconds = 0;
    req.batch_size = batch_size;
    req.sub_batch_size = sub_batch_size;
    req.pause_ms = 0;
    store::queue(client, dictionary, &req).unwrap();
}

/// `(name, serves, epoch)` of the database at `url`.
pub fn identity(url: &str) -> (String, Vec<String>, i64) {
    let i = store::identity::require(&mut connect(url)).unwrap();
    (i.name, i.serves, i.epoch)
}

/// The shared database before a split: `ci_builds` (`gitlab_ci`) and `projects` (`gitlab_main`) with
/// `rows` keys each, and the install stamping it `main` serving main and ci.
pub fn seed_shared_database(client: &mut postgres::Client, rows: i64) {
    for table in ["ci_builds", "projects"] {
        client
            .batch_execute(&format!(
                "CREATE TABLE {table} (id bigint PRIMARY KEY, done int NOT NULL DEFAULT 0)"
            ))
            .unwrap();
        client
            .execute(
                &format!("INSERT INTO {table} (id) SELECT generate_series(1, $1::bigint)"),
                &[&rows],
            )
            .unwrap();
    }
    store::install(client, "main", &["main".into(), "ci".into()], None).unwrap();
}
