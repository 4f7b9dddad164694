//! Cursor batching on GitLab's own tracking tables (the fixture's DDL): a composite-key migration
//! as GitLab 17.6 writes it (`min_cursor`/`max_cursor`, `min_value`/`max_value` NULL) runs in
//! keyset order over the table's primary key, every key once, with cursors on its job rows as
//! GitLab stores them; a cursor row that cannot run is held with why and stops nothing else.

mod common;

use common::*;
use schema_fence::runner::{Claim, Completion, CursorRange, Runner, RunnerOptions};
use schema_fence::store::{self, migrations};
use schema_fence::Topology;

fn topology() -> Topology {
    Topology::load(&gitlab_fixtures().join("database_connections")).unwrap()
}

/// GitLab's DDL, installed for `main` serving `main` and `ci` (before the split), with
/// `ci_stages` keyed by `(id, partition_id)`: ids 1..=300 in partition 100, ids 201..=450 in 101
/// (so ids 201..=300 are in both), and `projects` keyed by id.
fn gitlab_database(prefix: &str) -> String {
    let url = fresh_database(prefix);
    let mut client = connect(&url);
    let ddl = std::fs::read_to_string(gitlab_fixtures().join("batched_background_migrations.sql"))
        .unwrap();
    client.batch_execute(&ddl).unwrap();
    client
        .batch_execute(
            "CREATE TABLE ci_stages (id bigint NOT NULL, partition_id integer NOT NULL,
                                     done int NOT NULL DEFAULT 0, PRIMARY KEY (id, partition_id));
             INSERT INTO ci_stages (id, partition_id) SELECT i, 100 FROM generate_series(1, 300) i;
             INSERT INTO ci_stages (id, partition_id) SELECT i, 101 FROM generate_series(201, 450) i;
             CREATE TABLE projects (id integer PRIMARY KEY, done int NOT NULL DEFAULT 0);
             INSERT INTO projects (id) SELECT generate_series(1, 120);
             CREATE TABLE ci_runners (id bigint PRIMARY KEY, done int NOT NULL DEFAULT 0);
             INSERT INTO ci_runners (id) SELECT generate_series(1, 10);",
        )
        .unwrap();
    let mut tx = client.transaction().unwrap();
    store::install(&mut tx, "main", &["main".into(), "ci".into()], None).unwrap();
    tx.commit().unwrap();
    url
}

/// A cursor-batched row as GitLab writes it. GitLab's `min_cursor` is a position before the
/// first key (its keyset iterator starts after it).
fn cursor_migration(url: &str, job: &str, table: &str, cursors: (&str, &str), class: &str) -> i64 {
    connect(url)
        .query_one(
            "INSERT INTO batched_background_migrations (created_at, updated_at, min_value, \
             max_value, min_cursor, max_cursor, batch_size, sub_batch_size, \"interval\", status, \
             job_class_name, batch_class_name, table_name, column_name, job_arguments, \
             gitlab_schema, pause_ms) \
             VALUES (now(), now(), NULL, NULL, $1::text::jsonb, $2::text::jsonb, 100, 30, 0, 1, \
             $3, $4, $5, 'id', '[]', 'gitlab_ci', 0) RETURNING id",
            &[&cursors.0, &cursors.1, &job, &class, &table],
        )
        .unwrap()
        .get(0)
}

fn id_migration(url: &str, job: &str, table: &str, max: i64, tag: &str) -> i64 {
    connect(url)
        .query_one(
            "INSERT INTO batched_background_migrations (created_at, updated_at, min_value, \
             max_value, batch_size, sub_batch_size, \"interval\", status, job_class_name, \
             table_name, column_name, job_arguments, gitlab_schema, pause_ms) \
             VALUES (now(), now(), 1, $1, 50, 25, 0, 1, $2, $3, 'id', '[]', $4, 0) RETURNING id",
            &[&max, &job, &table, &tag],
        )
        .unwrap()
        .get(0)
}

const STAGES: &str = "UPDATE ci_stages SET done = done + 1 \
    WHERE (id, partition_id) >= ($1, $2) AND (id, partition_id) <= ($3, $4)";

fn statement(class: &str) -> Option<String> {
    match class {
        "BackfillCiStages" => Some(STAGES.into()),
        "BackfillProjects" => {
            Some("UPDATE projects SET done = done + 1 WHERE id BETWEEN $1 AND $2".into())
        }
        "BackfillCiRunners" => {
            Some("UPDATE ci_runners SET done = done + 1 WHERE id BETWEEN $1 AND $2".into())
        }
        _ => None,
    }
}

fn runner(url: &str) -> Runner {
    Runner::new(url, "main", topology(), RunnerOptions::default())
}

#[test]
fn a_composite_key_migration_runs_in_keyset_order_every_key_once_with_gitlabs_job_cursors() {
    let url = gitlab_database("cursor_runs");
    let stages = cursor_migration(
        &url,
        "BackfillCiStages",
        "ci_stages",
        ("[0, 0]", "[450, 101]"),
        "PrimaryKeyBatchingStrategy",
    );
    let projects = id_migration(&url, "BackfillProjects", "projects", 120, "gitlab_main");

    let listed = migrations::list(&mut connect(&url)).unwrap();
    assert!(listed.iter().all(|m| m.not_runnable.is_none()));

    let mut runner = runner(&url);
    // The first batch: the 100 keys after min_cursor, in (id, partition_id) order.
    let first = loop {
        match runner.claim_next().unwrap() {
            Claim::Batch(batch) if batch.migration_id == stages => break batch,
            Claim::Batch(other) => {
                let report = runner
                    .run_sql_batch(&other, &statement(&other.job_class_name).unwrap())
                    .unwrap();
                runner.complete(&other, &report.metrics_json()).unwrap();
            }
            other => panic!("expected a batch, got {other:?}"),
        }
    };
    assert_eq!(
        first.cursor.as_deref(),
        Some(&CursorRange {
            columns: vec!["id".into(), "partition_id".into()],
            min: vec![1, 100],
            max: vec![100, 100],
        })
    );
    // A failed attempt is retried with the same cursors.
    let failed = runner
        .run_sql_batch(&first, "UPDATE ci_stages SET done = 1 / 0 WHERE (id, partition_id) >= ($1, $2) AND (id, partition_id) <= ($3, $4)")
        .unwrap_err();
    runner.fail(&first, &failed.to_string(), false).unwrap();

    let ran = runner.run_sql_until_done(statement).unwrap();
    assert!(ran >= 8, "ran {ran} batches");
    assert_eq!(
        migration_status(&url, stages),
        3,
        "the cursor migration finished"
    );
    assert_eq!(
        migration_status(&url, projects),
        3,
        "the id migration finished too"
    );
    assert_eq!(done_counts(&url, "ci_stages"), (0, 550, 0));
    assert_eq!(done_counts(&url, "projects"), (0, 120, 0));

    let mut client = connect(&url);
    let jobs = client
        .query(
            "SELECT min_value, max_value, min_cursor::text, max_cursor::text, status, attempts \
             FROM batched_background_migration_jobs WHERE batched_background_migration_id = $1 \
             ORDER BY id",
            &[&stages],
        )
        .unwrap();
    assert_eq!(jobs.len(), 6, "550 keys in batches of 100");
    let cursors: Vec<(String, String)> = jobs.iter().map(|j| (j.get(2), j.get(3))).collect();
    assert_eq!(cursors[0], ("[1, 100]".into(), "[100, 100]".into()));
    assert_eq!(cursors[1], ("[101, 100]".into(), "[200, 100]".into()));
    // Ids 201..=300 are in both partitions: keyset order interleaves them.
    assert_eq!(cursors[2], ("[201, 100]".into(), "[250, 101]".into()));
    assert_eq!(
        cursors[5].1, "[450, 101]",
        "the last batch reaches max_cursor"
    );
    for job in &jobs {
        assert_eq!(job.get::<_, Option<i64>>(0), None);
        assert_eq!(job.get::<_, Option<i64>>(1), None);
        assert_eq!(job.get::<_, i16>(4), 3, "succeeded");
    }
    assert_eq!(jobs[0].get::<_, i16>(5), 2, "the first job ran twice");
}

#[test]
fn a_cursor_row_that_cannot_run_is_reported_or_held_with_why_and_stops_nothing_else() {
    let url = gitlab_database("cursor_unrunnable");
    // Two cursor values over a table whose primary key is one column.
    let mismatched = cursor_migration(
        &url,
        "BackfillCiRunnersByCursor",
        "ci_runners",
        ("[0, 0]", "[10, 10]"),
        "PrimaryKeyBatchingStrategy",
    );
    // A text key, with the cursors GitLab would write for it.
    connect(&url)
        .batch_execute(
            "CREATE TABLE ci_tags (name text PRIMARY KEY); INSERT INTO ci_tags VALUES ('a')",
        )
        .unwrap();
    let text_key = cursor_migration(
        &url,
        "BackfillCiTags",
        "ci_tags",
        ("[\"\"]", "[\"zzz\"]"),
        "PrimaryKeyBatchingStrategy",
    );
    // A strategy schema_fence does not walk cursors with.
    let loose = cursor_migration(
        &url,
        "BackfillCiStages",
        "ci_stages",
        ("[0, 0]", "[450, 101]"),
        "LooseIndexScanBatchingStrategy",
    );
    // Later migrations on the same tables, and one elsewhere, still run.
    let runners = id_migration(&url, "BackfillCiRunners", "ci_runners", 10, "gitlab_ci");
    let projects = id_migration(&url, "BackfillProjects", "projects", 120, "gitlab_main");

    let listed = migrations::list(&mut connect(&url)).unwrap();
    let reason = |id: i64| {
        listed
            .iter()
            .find(|m| m.id == id)
            .unwrap()
            .not_runnable
            .clone()
    };
    assert!(reason(loose)
        .unwrap()
        .contains("LooseIndexScanBatchingStrategy"));
    // A non-integer cursor shows in the listing, before any claim tries.
    assert!(reason(text_key)
        .unwrap()
        .contains("only integer keys are batched"));
    // So does a cursor wider than the table's primary key.
    let why = reason(mismatched).unwrap();
    assert!(
        why.contains("ci_runners") && why.contains("primary key of 1 columns"),
        "{why}"
    );
    assert_eq!(reason(runners), None);

    runner(&url).run_sql_until_done(statement).unwrap();
    assert_eq!(migration_status(&url, runners), 3);
    assert_eq!(migration_status(&url, projects), 3);
    assert_eq!(done_counts(&url, "ci_runners"), (0, 10, 0));
    assert_eq!(done_counts(&url, "ci_stages"), (550, 0, 0));
    for id in [mismatched, text_key, loose] {
        assert_eq!(
            migration_status(&url, id),
            1,
            "left active for GitLab's worker"
        );
    }
    let (held, why): (bool, Option<String>) = {
        let row = connect(&url)
            .query_one(
                "SELECT on_hold_until > now(), schema_fence_hold_reason \
                 FROM batched_background_migrations WHERE id = $1",
                &[&mismatched],
            )
            .unwrap();
        (row.get(0), row.get(1))
    };
    assert!(held);
    let why = why.unwrap();
    assert!(
        why.contains("ci_runners") && why.contains("primary key of 1 columns"),
        "{why}"
    );
    let text_why: String = connect(&url)
        .query_one(
            "SELECT schema_fence_hold_reason FROM batched_background_migrations WHERE id = $1",
            &[&text_key],
        )
        .unwrap()
        .get(0);
    assert!(text_why.contains("only integer keys"), "{text_why}");
    let jobs: i64 = connect(&url)
        .query_one(
            "SELECT count(*) FROM batched_background_migration_jobs \
             WHERE batched_background_migration_id = ANY($1)",
            &[&vec![mismatched, text_key, loose]],
        )
        .unwrap()
        .get(0);
    assert_eq!(jobs, 0, "nothing was written for the rows that cannot run");
}

#[test]
fn completing_the_batch_that_reaches_max_cursor_finishes_the_migration_without_waiting_for_its_interval(
) {
    let url = gitlab_database("cursor_finishes");
    let stages = cursor_migration(
        &url,
        "BackfillCiStages",
        "ci_stages",
        ("[0, 0]", "[450, 101]"),
        "PrimaryKeyBatchingStrategy",
    );
    // GitLab's two minutes between batches, and one batch holding every key.
    connect(&url)
        .execute(
            "UPDATE batched_background_migrations SET \"interval\" = 120, batch_size = 1000 \
             WHERE id = $1",
            &[&stages],
        )
        .unwrap();
    let mut runner = runner(&url);
    let Claim::Batch(batch) = runner.claim_next().unwrap() else {
        panic!("the cursor migration is claimed")
    };
    let report = runner.run_sql_batch(&batch, STAGES).unwrap();
    assert_eq!(report.rows, 550);
    assert_eq!(report.sub_batches, 19, "550 keys in sub-batches of 30");
    assert_eq!(
        runner.complete(&batch, &report.metrics_json()).unwrap(),
        Completion::MigrationFinished
    );
    assert_eq!(migration_status(&url, stages), 3);
}

/// The jobs of `migration` as (`min_cursor`, `max_cursor`, `batch_size`, `sub_batch_size`,
/// `status`, `attempts`), in id order.
type JobRow = (String, String, i32, i32, i16, i16);

fn cursor_jobs(url: &str, migration: i64) -> Vec<JobRow> {
    connect(url)
        .query(
            "SELECT min_cursor::text, max_cursor::text, batch_size, sub_batch_size, status, \
             attempts FROM batched_background_migration_jobs \
             WHERE batched_background_migration_id = $1 ORDER BY id",
            &[&migration],
        )
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3), r.get(4), r.get(5)))
        .collect()
}

#[test]
fn a_timed_out_cursor_batch_is_halved_in_keyset_order_until_it_is_no_larger_than_its_sub_batch() {
    let url = gitlab_database("cursor_split");
    // Updating key (10, 100) takes far longer than the job's statement timeout while it is listed.
    connect(&url)
        .batch_execute(
            "CREATE TABLE slow_keys (id bigint, partition_id integer);
             INSERT INTO slow_keys VALUES (10, 100);
             CREATE FUNCTION sleep_on_slow_keys() RETURNS trigger LANGUAGE plpgsql AS $$
             BEGIN
               IF EXISTS (SELECT FROM slow_keys s
                          WHERE (s.id, s.partition_id) = (NEW.id, NEW.partition_id)) THEN
                 PERFORM pg_sleep(5);
               END IF;
               RETURN NEW;
             END $$;
             CREATE TRIGGER ci_stages_slow BEFORE UPDATE ON ci_stages
               FOR EACH ROW EXECUTE FUNCTION sleep_on_slow_keys();",
        )
        .unwrap();
    let stages = cursor_migration(
        &url,
        "BackfillCiStages",
        "ci_stages",
        ("[0, 0]", "[450, 101]"),
        "PrimaryKeyBatchingStrategy",
    );
    let options = RunnerOptions {
        job_statement_timeout: std::time::Duration::from_millis(300),
        ..RunnerOptions::default()
    };
    let mut runner = Runner::new(&url, "main", topology(), options);
    let mut time_out = |expected: (&[i64], &[i64], i32, i32)| {
        let Claim::Batch(batch) = runner.claim_next().unwrap() else {
            panic!("expected a batch")
        };
        let cursor = batch.cursor.as_deref().unwrap();
        assert_eq!(
            (
                cursor.min.as_slice(),
                cursor.max.as_slice(),
                batch.batch_size,
                batch.sub_batch_size
            ),
            expected
        );
        let error = runner.run_sql_batch(&batch, STAGES).unwrap_err();
        assert!(error.is_statement_timeout(), "{error}");
        assert_eq!(
            runner.fail(&batch, &error.to_string(), true).unwrap(),
            Completion::Recorded
        );
    };
    let pending = |min: &str, max: &str, size: i32, sub: i32| -> JobRow {
        (min.into(), max.into(), size, sub, 0, 0)
    };

    // 100 keys from (1, 100): halved at the 50th key; the upper half starts right after it.
    time_out((&[1, 100], &[100, 100], 100, 30));
    assert_eq!(
        cursor_jobs(&url, stages),
        vec![
            pending("[1, 100]", "[50, 100]", 50, 30),
            pending("[50, 101]", "[100, 100]", 50, 30),
        ]
    );
    // The lower half runs first, with its own sizes, and is halved again.
    time_out((&[1, 100], &[50, 100], 50, 30));
    assert_eq!(
        cursor_jobs(&url, stages),
        vec![
            pending("[1, 100]", "[25, 100]", 25, 25),
            pending("[50, 101]", "[100, 100]", 50, 30),
            pending("[25, 101]", "[50, 100]", 25, 25),
        ]
    );
    // 25 keys in one sub-batch of 25 cannot run in less: it fails and is retried, not split.
    time_out((&[1, 100], &[25, 100], 25, 25));
    let jobs = cursor_jobs(&url, stages);
    assert_eq!(jobs.len(), 3, "not split");
    assert_eq!(
        (jobs[0].4, jobs[0].5),
        (2, 1),
        "failed after its first attempt"
    );

    connect(&url)
        .batch_execute("DELETE FROM slow_keys")
        .unwrap();
    runner.run_sql_until_done(statement).unwrap();
    assert_eq!(migration_status(&url, stages), 3);
    // No sub-batch committed before a timeout (the slow key is in each one's first), so every
    // key was updated once; and the job ranges cover every key once.
    assert_eq!(done_counts(&url, "ci_stages"), (0, 550, 0));
    let covered: Vec<i64> = connect(&url)
        .query(
            "SELECT (SELECT count(*) FROM batched_background_migration_jobs j \
              WHERE j.batched_background_migration_id = $1 \
                AND (s.id, s.partition_id) >= ((j.min_cursor->>0)::bigint, (j.min_cursor->>1)::int) \
                AND (s.id, s.partition_id) <= ((j.max_cursor->>0)::bigint, (j.max_cursor->>1)::int)) \
             FROM ci_stages s",
            &[&stages],
        )
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(covered.len(), 550);
    assert!(covered.iter().all(|&n| n == 1), "{covered:?}");
}

fn queue_cursor(url: &str, job: &str, table: &str, columns: &[&str]) -> Result<i64, String> {
    let dictionary =
        schema_fence::Dictionary::load(&[gitlab_fixtures().join("gitlab_schemas.yml")]).unwrap();
    let mut req = store::QueueRequest::new(job, table, "id");
    req.restriction = Some("gitlab_ci".into());
    req.job_interval_seconds = 0;
    req.batch_size = 100;
    req.sub_batch_size = 30;
    req.pause_ms = 0;
    req.cursor_columns = Some(columns.iter().map(ToString::to_string).collect());
    match store::queue(&mut connect(url), &dictionary, &req).map_err(|e| e.to_string())? {
        store::QueueOutcome::Queued { id, .. } => Ok(id),
        other @ store::QueueOutcome::AlreadyQueued { .. } => Err(format!("{other:?}")),
    }
}

#[test]
fn queueing_a_cursor_stores_gitlabs_shape_and_refuses_a_key_that_is_not_unique_or_not_integer() {
    let url = gitlab_database("cursor_queue");
    connect(&url)
        .batch_execute(
            "CREATE TABLE ci_job_artifacts (id bigint NOT NULL, file_type integer, \
             name text NOT NULL, project_id bigint NOT NULL, PRIMARY KEY (id), \
             UNIQUE (project_id, id))",
        )
        .unwrap();
    for (columns, why) in [
        (
            &["partition_id"][..],
            "no unique index or primary key of ci_stages",
        ),
        (
            &["partition_id", "id"][..],
            "no unique index or primary key of ci_stages",
        ),
        (&["id", "partition_id", "id"][..], "names id twice"),
    ] {
        let err = queue_cursor(&url, "BackfillCiStages", "ci_stages", columns).unwrap_err();
        assert!(
            err.contains("of table ci_stages") && err.contains(why),
            "{err}"
        );
    }
    for (columns, why) in [
        (&["id", "name"][..], "ci_job_artifacts.name is text"),
        (
            &["id", "file_type"][..],
            "ci_job_artifacts.file_type may be NULL",
        ),
        (&["id", "nope"][..], "ci_job_artifacts has no column nope"),
        (&["project_id"][..], "no unique index or primary key"),
    ] {
        let err = queue_cursor(&url, "BackfillArtifacts", "ci_job_artifacts", columns).unwrap_err();
        assert!(
            err.contains(&format!(
                "cursor ({}) of table ci_job_artifacts",
                columns.join(", ")
            )) && err.contains(why),
            "{err}"
        );
    }
    let rows: i64 = connect(&url)
        .query_one("SELECT count(*) FROM batched_background_migrations", &[])
        .unwrap()
        .get(0);
    assert_eq!(rows, 0, "nothing was written for a refused cursor");
    // A unique index that leads the cursor (not the primary key) makes its order unique too; the
    // table is empty, so the migration is queued finished, as GitLab queues it.
    let empty = queue_cursor(
        &url,
        "BackfillArtifacts",
        "ci_job_artifacts",
        &["project_id", "id"],
    )
    .unwrap();
    assert_eq!(migration_status(&url, empty), 3);

    let stages = queue_cursor(
        &url,
        "BackfillCiStages",
        "ci_stages",
        &["id", "partition_id"],
    )
    .unwrap();
    let row = connect(&url)
        .query_one(
            "SELECT min_value, max_value, min_cursor::text, max_cursor::text, status \
             FROM batched_background_migrations WHERE id = $1",
            &[&stages],
        )
        .unwrap();
    // The first and last key in keyset order; min_value/max_value are the table's defaults.
    assert_eq!(
        (
            row.get::<_, Option<i64>>(0),
            row.get::<_, Option<i64>>(1),
            row.get::<_, String>(2),
            row.get::<_, String>(3),
            row.get::<_, i16>(4)
        ),
        (Some(1), None, "[1, 100]".into(), "[450, 101]".into(), 1)
    );
    runner(&url).run_sql_until_done(statement).unwrap();
    assert_eq!(migration_status(&url, stages), 3);
    assert_eq!(
        done_counts(&url, "ci_stages"),
        (0, 550, 0),
        "every key once, the first included"
    );
}

#[test]
fn a_cursor_queued_here_walks_the_job_classs_cursor_columns_not_the_primary_key() {
    let url = gitlab_database("cursor_columns");
    // Keyed by id; the job class batches by (project_id, id), which a unique index leads.
    connect(&url)
        .batch_execute(
            "CREATE TABLE ci_job_artifacts (id bigint PRIMARY KEY, project_id integer NOT NULL, \
             done int NOT NULL DEFAULT 0, UNIQUE (project_id, id));
             INSERT INTO ci_job_artifacts (id, project_id) SELECT i, 8 - i % 7 FROM generate_series(1, 250) i;",
        )
        .unwrap();
    let artifacts = queue_cursor(
        &url,
        "BackfillArtifacts",
        "ci_job_artifacts",
        &["project_id", "id"],
    )
    .unwrap();
    let stored: Option<Vec<String>> = connect(&url)
        .query_one(
            "SELECT schema_fence_cursor_columns FROM batched_background_migrations WHERE id = $1",
            &[&artifacts],
        )
        .unwrap()
        .get(0);
    assert_eq!(stored, Some(vec!["project_id".into(), "id".into()]));

    let mut runner = runner(&url);
    let Claim::Batch(first) = runner.claim_next().unwrap() else {
        panic!("the cursor migration is claimed")
    };
    // Keyset order: project 2 holds ids 6, 13, ..., 244 (35), project 3 ids 5, ..., 250 (36), so
    // the 100th key is the 29th of project 4.
    let cursor = first.cursor.as_deref().unwrap();
    assert_eq!(cursor.columns, vec!["project_id", "id"]);
    assert_eq!(
        (cursor.min.clone(), cursor.max.clone()),
        (vec![2, 6], vec![4, 200])
    );
    let walk = "UPDATE ci_job_artifacts SET done = done + 1 \
        WHERE (project_id, id) >= ($1, $2) AND (project_id, id) <= ($3, $4)";
    let report = runner.run_sql_batch(&first, walk).unwrap();
    assert_eq!(report.rows, 100);
    runner.complete(&first, &report.metrics_json()).unwrap();
    runner
        .run_sql_until_done(|class| (class == "BackfillArtifacts").then(|| walk.to_string()))
        .unwrap();
    assert_eq!(migration_status(&url, artifacts), 3);
    assert_eq!(done_counts(&url, "ci_job_artifacts"), (0, 250, 0));
    let cursors: Vec<(String, String)> = connect(&url)
        .query(
            "SELECT min_cursor::text, max_cursor::text FROM batched_background_migration_jobs \
             WHERE batched_background_migration_id = $1 ORDER BY id",
            &[&artifacts],
        )
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    assert_eq!(cursors.len(), 3, "250 keys in batches of 100");
    assert_eq!(
        cursors[2].1, "[8, 245]",
        "the last batch reaches max_cursor"
    );
}

#[test]
fn a_cursor_queued_here_whose_column_no_longer_fits_is_listed_not_runnable_and_held_with_the_same_why(
) {
    let url = gitlab_database("cursor_listing");
    connect(&url)
        .batch_execute(
            "CREATE TABLE ci_job_artifacts (id bigint PRIMARY KEY, project_id integer NOT NULL, \
             done int NOT NULL DEFAULT 0, UNIQUE (project_id, id));
             INSERT INTO ci_job_artifacts (id, project_id) SELECT i, i % 3 FROM generate_series(1, 30) i;",
        )
        .unwrap();
    let artifacts = queue_cursor(
        &url,
        "BackfillArtifacts",
        "ci_job_artifacts",
        &["project_id", "id"],
    )
    .unwrap();
    let reason = || {
        migrations::list(&mut connect(&url))
            .unwrap()
            .into_iter()
            .find(|m| m.id == artifacts)
            .unwrap()
            .not_runnable
    };
    assert_eq!(reason(), None, "its stored columns fit");
    connect(&url)
        .batch_execute("ALTER TABLE ci_job_artifacts ALTER COLUMN project_id TYPE numeric")
        .unwrap();
    let listed = reason().expect("listed as not runnable before any claim");
    assert!(
        listed.contains("cursor column ci_job_artifacts.project_id is numeric"),
        "{listed}"
    );
    assert_eq!(runner(&url).claim_next().unwrap(), Claim::Nothing);
    let held: String = connect(&url)
        .query_one(
            "SELECT schema_fence_hold_reason FROM batched_background_migrations WHERE id = $1",
            &[&artifacts],
        )
        .unwrap()
        .get(0);
    assert_eq!(
        held,
        format!("not runnable: {listed}"),
        "the claim holds it for the same reason"
    );
}
