//! The fetch (docs/architecture.md section 7): a bounded number of index probes whatever the tracking data
//! holds, and the next-run time it ranges over, kept true by whoever writes the tables.

mod common;

use common::*;
use schema_fence::runner::{Runner, RunnerOptions};
use schema_fence::store;
use schema_fence::Topology;

/// 100,000 tracking rows; `SCHEMA_FENCE_FETCH_ROWS=1000000` runs the layouts at the bench's size
/// (about a minute per layout on a loaded machine).
fn rows() -> i64 {
    std::env::var("SCHEMA_FENCE_FETCH_ROWS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000)
}

/// The allowed schemas of `ci` after the split.
const CI_ALLOWED: &str = "{gitlab_ci,gitlab_shared,gitlab_internal}";

fn ci_database(prefix: &str) -> String {
    let url = fresh_database(prefix);
    let mut client = connect(&url);
    store::install(&mut client, "ci", &["ci".to_string()], None).unwrap();
    url
}

fn runner(url: &str) -> Runner {
    let topology = Topology::load(&gitlab_fixtures().join("database_connections")).unwrap();
    Runner::new(url, "ci", topology, RunnerOptions::default())
}

/// Inserts tracking rows shaped as GitLab writes them; `schema`, `status` and `table` are SQL
/// expressions of the row number `i`.
fn insert_migrations(url: &str, from: i64, to: i64, schema: &str, status: &str, table: &str) {
    connect(url)
        .batch_execute(&format!(
            "INSERT INTO batched_background_migrations (created_at, updated_at, job_class_name, \
             table_name, column_name, gitlab_schema, \"interval\", batch_size, sub_batch_size, \
             min_value, max_value, status)
             SELECT now(), now(), 'Job' || i, {table}, 'id', {schema}, 120, 1000, 100, 1, 1000000, \
                    {status}
             FROM generate_series({from}, {to}) i;
             ANALYZE batched_background_migrations;"
        ))
        .unwrap();
}

/// Gives each active migration a batch that started just now: none is due for two minutes.
fn start_every_active_migration(url: &str) {
    connect(url)
        .batch_execute(
            "INSERT INTO batched_background_migration_jobs (created_at, updated_at, \
             batched_background_migration_id, min_value, max_value, batch_size, sub_batch_size, status)
             SELECT now(), now(), id, 1, 1000, 1000, 100, 3 FROM batched_background_migrations
             WHERE status = 1;
             ANALYZE batched_background_migration_jobs;",
        )
        .unwrap();
}

/// The runner's fetch statement run with its generic plan: the plan's text and the buffers it
/// touched.
fn explain_fetch(url: &str) -> (String, i64) {
    let mut client = connect(url);
    client
        .batch_execute(&format!(
            "SET plan_cache_mode = force_generic_plan; SET jit = off; \
             PREPARE fence_fetch(text[], bigint) AS {}",
            schema_fence::runner::sql::FETCH_WITH_IDENTITY
        ))
        .unwrap();
    // The simple protocol: it hands back EXPLAIN's JSON as text.
    let mut explain = |options: &str| -> Vec<String> {
        client
            .simple_query(&format!(
                "EXPLAIN ({options}) EXECUTE fence_fetch('{CI_ALLOWED}', 8)"
            ))
            .unwrap()
            .iter()
            .filter_map(|m| match m {
                postgres::SimpleQueryMessage::Row(row) => row.get(0).map(str::to_string),
                _ => None,
            })
            .collect()
    };
    let plan = explain("COSTS OFF").join("\n");
    let analyzed: serde_json::Value =
        serde_json::from_str(&explain("ANALYZE, BUFFERS, FORMAT JSON").join("\n")).unwrap();
    let top = &analyzed[0]["Plan"];
    let buffers =
        top["Shared Hit Blocks"].as_i64().unwrap() + top["Shared Read Blocks"].as_i64().unwrap();
    (plan, buffers)
}

/// What a few index probes per allowed schema and per returned migration touch; a walk over the
/// rows of any layout below touches hundreds to thousands of pages.
const BOUNDED_BUFFERS: i64 = 150;

fn assert_bounded(layout: &str, url: &str) {
    let (plan, buffers) = explain_fetch(url);
    assert!(
        !plan.contains("Seq Scan on batched_background_migrations"),
        "{layout}: {plan}"
    );
    assert!(
        plan.contains("index_batched_background_migrations_due"),
        "{layout}: {plan}"
    );
    assert!(
        buffers <= BOUNDED_BUFFERS,
        "{layout}: the fetch touched {buffers} buffers (at most {BOUNDED_BUFFERS}):\n{plan}"
    );
}

mod with_100_000_tracking_rows_or_more_the_fetch_is_a_few_index_probes {
    use super::*;

    #[test]
    fn when_schemas_and_statuses_are_interleaved() {
        let url = ci_database("fetch_interleaved");
        insert_migrations(
            &url,
            1,
            rows(),
            "CASE WHEN i % 2 = 0 THEN 'gitlab_ci' ELSE 'gitlab_main' END",
            "CASE WHEN i % 10 = 0 THEN 1 ELSE 3 END",
            "'table_' || (i % 500)",
        );
        assert_bounded("interleaved", &url);
        let (ids, _) = runner(&url).fetch().unwrap();
        assert_eq!(ids, vec![10, 20, 30, 40, 50, 60, 70, 80]);
    }

    #[test]
    fn when_every_stale_row_comes_before_the_databases_own() {
        let url = ci_database("fetch_stale_first");
        insert_migrations(&url, 1, rows() - 1000, "'gitlab_main'", "1", "'main_' || i");
        insert_migrations(&url, rows() - 999, rows(), "'gitlab_ci'", "1", "'ci_' || i");
        assert_bounded("stale rows first", &url);
        let (ids, _) = runner(&url).fetch().unwrap();
        assert_eq!(ids, ((rows() - 999)..(rows() - 991)).collect::<Vec<_>>());
    }

    #[test]
    fn when_1000_migrations_on_1000_tables_are_none_of_them_due() {
        let url = ci_database("fetch_none_due");
        insert_migrations(&url, 1, rows() - 1000, "'gitlab_ci'", "3", "'done_' || i");
        insert_migrations(
            &url,
            rows() - 999,
            rows(),
            "'gitlab_ci'",
            "1",
            "'table_' || i",
        );
        start_every_active_migration(&url);
        assert_bounded("none due", &url);
        let (ids, _) = runner(&url).fetch().unwrap();
        assert_eq!(ids, Vec::<i64>::new());
    }

    #[test]
    fn when_half_of_the_rows_are_paused() {
        let url = ci_database("fetch_half_paused");
        insert_migrations(
            &url,
            1,
            rows() - 1000,
            "'gitlab_ci'",
            "CASE WHEN i % 2 = 0 THEN 0 ELSE 3 END",
            "'table_' || (i % 500)",
        );
        insert_migrations(
            &url,
            rows() - 999,
            rows(),
            "'gitlab_ci'",
            "1",
            "'active_' || i",
        );
        assert_bounded("half paused", &url);
        let (ids, _) = runner(&url).fetch().unwrap();
        assert_eq!(ids, ((rows() - 999)..(rows() - 991)).collect::<Vec<_>>());
    }
}

mod the_next_run_time {
    use super::*;

    fn next_run_in_seconds(url: &str, id: i64) -> Option<f64> {
        connect(url)
            .query_one(
                "SELECT extract(epoch FROM schema_fence_next_run_at - now())::float8 \
                 FROM batched_background_migrations WHERE id = $1",
                &[&id],
            )
            .unwrap()
            .get(0)
    }

    #[test]
    fn follows_a_new_batch_and_the_migrations_interval() {
        let url = ci_database("next_run_batch");
        insert_migrations(&url, 1, 2, "'gitlab_ci'", "1", "'table_' || i");
        assert_eq!(runner(&url).fetch().unwrap().0, vec![1, 2]);
        start_every_active_migration(&url);
        let seconds = next_run_in_seconds(&url, 1).unwrap();
        assert!((119.0..=120.0).contains(&seconds), "{seconds}");
        assert_eq!(runner(&url).fetch().unwrap().0, Vec::<i64>::new());
        connect(&url)
            .batch_execute("UPDATE batched_background_migrations SET \"interval\" = 0 WHERE id = 2")
            .unwrap();
        assert_eq!(runner(&url).fetch().unwrap().0, vec![2]);
    }

    #[test]
    fn follows_a_hold_written_by_anyone() {
        let url = ci_database("next_run_hold");
        insert_migrations(&url, 1, 2, "'gitlab_ci'", "1", "'table_' || i");
        let mut client = connect(&url);
        client
            .batch_execute(
                "UPDATE batched_background_migrations SET on_hold_until = now() + interval '1 hour' \
                 WHERE id = 1",
            )
            .unwrap();
        assert_eq!(runner(&url).fetch().unwrap().0, vec![2]);
        client
            .batch_execute(
                "UPDATE batched_background_migrations SET on_hold_until = NULL WHERE id = 1",
            )
            .unwrap();
        assert_eq!(runner(&url).fetch().unwrap().0, vec![1, 2]);
    }

    #[test]
    fn is_filled_in_by_an_install_over_rows_that_predate_it() {
        let url = ci_database("next_run_upgrade");
        insert_migrations(&url, 1, 3, "'gitlab_ci'", "1", "'table_' || i");
        start_every_active_migration(&url);
        let mut client = connect(&url);
        // An install from before the column: GitLab's table as it was.
        client
            .batch_execute(
                "ALTER TABLE batched_background_migrations DROP COLUMN schema_fence_next_run_at CASCADE; \
                 UPDATE batched_background_migrations SET \"interval\" = 0 WHERE id = 3",
            )
            .unwrap();
        store::install(&mut client, "ci", &["ci".to_string()], None).unwrap();
        store::install(&mut client, "ci", &["ci".to_string()], None).unwrap();
        assert!(next_run_in_seconds(&url, 1).unwrap() > 100.0);
        assert_eq!(runner(&url).fetch().unwrap().0, vec![3]);
    }
}

/// What once made the plan flip: GitLab's index on `status` against the due range, decided by how
/// many active rows `ANALYZE`'s sample happened to see (4 times in 20 at 1,000 of 1,000,000).
mod whatever_analyze_samples {
    use super::*;

    #[test]
    fn the_fetch_of_1000_migrations_none_due_among_1_000_000_walks_the_due_index() {
        let url = ci_database("fetch_plan_stable");
        let rows = 1_000_000;
        insert_migrations(&url, 1, rows - 1000, "'gitlab_ci'", "3", "'done_' || i");
        insert_migrations(&url, rows - 999, rows, "'gitlab_ci'", "1", "'table_' || i");
        start_every_active_migration(&url);
        for sample in 0..8 {
            connect(&url)
                .batch_execute("ANALYZE batched_background_migrations")
                .unwrap();
            let (plan, buffers) = explain_fetch(&url);
            assert!(
                plan.contains("index_batched_background_migrations_due")
                    && !plan.contains("index_batched_background_migrations_on_status"),
                "sample {sample}: {plan}"
            );
            assert!(
                buffers <= BOUNDED_BUFFERS,
                "sample {sample}: {buffers} buffers:\n{plan}"
            );
        }
    }
}
