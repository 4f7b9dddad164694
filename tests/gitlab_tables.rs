//! GitLab's own tracking tables, created from GitLab's DDL (the fixture) and in the 2022 shape
//! from before `gitlab_schema`, holding rows as GitLab writes them: install, list, retag and run
//! every runnable migration to completion on the database that owns it, every key once.

mod common;

use common::*;
use schema_fence::error::StoreError;
use schema_fence::runner::{Claim, Runner, RunnerOptions};
use schema_fence::store::{self, migrations, QueueOutcome, QueueRequest};
use schema_fence::{Dictionary, Error, Topology};

fn dictionary() -> Dictionary {
    Dictionary::load(&[gitlab_fixtures().join("gitlab_schemas.yml")]).unwrap()
}

fn topology() -> Topology {
    Topology::load(&gitlab_fixtures().join("database_connections")).unwrap()
}

fn strings(names: &[&str]) -> Vec<String> {
    names.iter().map(std::string::ToString::to_string).collect()
}

fn gitlab_ddl() -> String {
    std::fs::read_to_string(gitlab_fixtures().join("batched_background_migrations.sql")).unwrap()
}

/// The tables migrated: bigint, integer and smallint keys, each with a `done` counter.
fn data_tables(client: &mut postgres::Client) {
    client
        .batch_execute(
            "CREATE TABLE ci_builds (id bigint PRIMARY KEY, done int NOT NULL DEFAULT 0);
             INSERT INTO ci_builds (id) SELECT generate_series(1, 400);
             CREATE TABLE ci_pipelines (id integer PRIMARY KEY, done int NOT NULL DEFAULT 0);
             INSERT INTO ci_pipelines (id) SELECT generate_series(1, 250);
             CREATE TABLE projects (id integer PRIMARY KEY, done int NOT NULL DEFAULT 0);
             INSERT INTO projects (id) SELECT generate_series(1, 300);
             CREATE TABLE events (id smallint PRIMARY KEY, done int NOT NULL DEFAULT 0);
             INSERT INTO events (id) SELECT generate_series(1, 120);
             CREATE TABLE issues (id bigint PRIMARY KEY, done int NOT NULL DEFAULT 0);
             INSERT INTO issues (id) SELECT generate_series(1, 50);
             CREATE TABLE merge_requests (id bigint PRIMARY KEY, done int NOT NULL DEFAULT 0);
             INSERT INTO merge_requests (id) SELECT generate_series(1, 50);
             CREATE TABLE ci_stages (id bigint NOT NULL, partition_id bigint NOT NULL,
                                     done int NOT NULL DEFAULT 0, PRIMARY KEY (id, partition_id));
             INSERT INTO ci_stages (id, partition_id) SELECT i, 100 FROM generate_series(1, 30) i;",
        )
        .unwrap();
}

/// A migration row as GitLab's `queue_batched_background_migration` writes it (`tag` None for
/// the 2022 shape, which has no `gitlab_schema`); returns its id.
fn gitlab_migration(
    client: &mut postgres::Client,
    job: &str,
    table: &str,
    status: i16,
    range: (i64, i64),
    tag: Option<&str>,
) -> i64 {
    let (columns, values) = match tag {
        Some(_) => (", gitlab_schema", ", $6"),
        None => ("", ""),
    };
    let sql = format!(
        "INSERT INTO batched_background_migrations (created_at, updated_at, min_value, max_value, \
         batch_size, sub_batch_size, \"interval\", status, job_class_name, table_name, column_name, \
         job_arguments, pause_ms{columns}) \
         VALUES (now() - interval '3 days', now() - interval '3 days', $1, $2, 100, 25, 120, $3, $4, $5, \
         'id', '[]', 0{values}) RETURNING id"
    );
    let row = match tag {
        Some(tag) => client.query_one(&sql, &[&range.0, &range.1, &status, &job, &table, &tag]),
        None => client.query_one(&sql, &[&range.0, &range.1, &status, &job, &table]),
    };
    row.unwrap().get(0)
}

/// A job row as GitLab's worker leaves it; `hours_idle` ago was its last update.
fn gitlab_job(
    client: &mut postgres::Client,
    migration: i64,
    range: (i64, i64),
    status: i16,
    attempts: i16,
    hours_idle: f64,
) {
    client
        .execute(
            "INSERT INTO batched_background_migration_jobs (created_at, updated_at, started_at, \
             batched_background_migration_id, min_value, max_value, batch_size, sub_batch_size, status, \
             attempts, pause_ms) \
             VALUES (now() - interval '3 days', now() - make_interval(secs => $6::float8 * 3600), now() - interval '3 days', \
                     $1, $2, $3, 100, 25, $4, $5, 0)",
            &[&migration, &range.0, &range.1, &status, &attempts, &hours_idle],
        )
        .unwrap();
}

/// The keys GitLab's succeeded jobs covered are done once already.
fn mark_done(client: &mut postgres::Client, table: &str, range: (i64, i64)) {
    client
        .execute(
            &format!("UPDATE {table} SET done = 1 WHERE id BETWEEN $1 AND $2"),
            &[&range.0, &range.1],
        )
        .unwrap();
}

struct Rows {
    builds: i64,
    pipelines: i64,
    projects: i64,
    events: i64,
    paused: i64,
    failed: i64,
    finished: i64,
    cursor: Option<i64>,
    exotic: i64,
}

/// GitLab's rows: finished, active (one with an orphaned running job), paused, failed; int4,
/// smallint and bigint keys; ci rows under GitLab's blanket `gitlab_main` tag; with the current
/// DDL also a cursor row; and a row of a batching strategy this library does not run.
fn gitlab_rows(client: &mut postgres::Client, tagged: bool) -> Rows {
    let tag = |t: &'static str| tagged.then_some(t);
    let finished = gitlab_migration(
        client,
        "BackfillUsers",
        "projects",
        3,
        (1, 300),
        tag("gitlab_main"),
    );
    // Queued before GitLab tagged rows: the blanket gitlab_main of 20220503035221.
    let builds = gitlab_migration(
        client,
        "BackfillCiBuilds",
        "ci_builds",
        1,
        (1, 400),
        tag("gitlab_main"),
    );
    gitlab_job(client, builds, (1, 100), 3, 1, 48.0);
    mark_done(client, "ci_builds", (1, 100));
    // Left running by GitLab's worker when it died: no lease, untouched for two hours.
    gitlab_job(client, builds, (101, 200), 1, 1, 2.0);
    let pipelines = gitlab_migration(
        client,
        "BackfillCiPipelines",
        "ci_pipelines",
        1,
        (1, 250),
        tag("gitlab_main"),
    );
    let projects = gitlab_migration(
        client,
        "BackfillProjects",
        "projects",
        1,
        (1, 300),
        tag("gitlab_main"),
    );
    let events = gitlab_migration(
        client,
        "BackfillEvents",
        "events",
        1,
        (1, 120),
        tag("gitlab_main"),
    );
    let paused = gitlab_migration(
        client,
        "BackfillIssues",
        "issues",
        0,
        (1, 50),
        tag("gitlab_main"),
    );
    let failed = gitlab_migration(
        client,
        "BackfillMergeRequests",
        "merge_requests",
        4,
        (1, 50),
        tag("gitlab_main"),
    );
    gitlab_job(client, failed, (1, 50), 2, 3, 24.0);
    let exotic = gitlab_migration(
        client,
        "BackfillCiStagesPerPartition",
        "ci_stages",
        1,
        (1, 30),
        tag("gitlab_ci"),
    );
    client
        .execute(
            "UPDATE batched_background_migrations SET batch_class_name = 'BackfillPartitionedStagesStrategy' WHERE id = $1",
            &[&exotic],
        )
        .unwrap();
    let cursor = tagged.then(|| {
        // GitLab 17.6: a composite key batched by cursor, min_value/max_value NULL; min_cursor is
        // a position before the first key (GitLab's keyset iterator starts after it).
        client
            .query_one(
                "INSERT INTO batched_background_migrations (created_at, updated_at, min_value, max_value, \
                 min_cursor, max_cursor, batch_size, sub_batch_size, \"interval\", status, job_class_name, \
                 table_name, column_name, job_arguments, gitlab_schema) \
                 VALUES (now(), now(), NULL, NULL, '[0, 100]', '[30, 100]', 100, 25, 120, 1, \
                 'BackfillCiStages', 'ci_stages', 'id', '[]', 'gitlab_ci') RETURNING id",
                &[],
            )
            .unwrap()
            .get(0)
    });
    Rows {
        builds,
        pipelines,
        projects,
        events,
        paused,
        failed,
        finished,
        cursor,
        exotic,
    }
}

/// GitLab's rows wait two minutes between batches; the test does not.
fn no_waiting(client: &mut postgres::Client) {
    client
        .batch_execute("UPDATE batched_background_migrations SET \"interval\" = 0")
        .unwrap();
}

fn increment(table: &str) -> String {
    format!("UPDATE {table} SET done = done + 1 WHERE id BETWEEN $1 AND $2")
}

fn sql_for(class: &str) -> Option<String> {
    Some(increment(match class {
        "BackfillCiBuilds" => "ci_builds",
        "BackfillCiPipelines" => "ci_pipelines",
        "BackfillProjects" | "Queued" => "projects",
        "BackfillEvents" => "events",
        "BackfillCiStages" => {
            return Some(
                "UPDATE ci_stages SET done = done + 1 \
                 WHERE (id, partition_id) BETWEEN ($1, $2) AND ($3, $4)"
                    .into(),
            )
        }
        _ => return None,
    }))
}

fn tag_of(url: &str, id: i64) -> String {
    connect(url)
        .query_one(
            "SELECT gitlab_schema FROM batched_background_migrations WHERE id = $1",
            &[&id],
        )
        .unwrap()
        .get(0)
}

fn runner(url: &str, database: &str) -> Runner {
    Runner::new(url, database, topology(), RunnerOptions::default())
}

#[test]
fn on_gitlabs_current_tables_install_lists_retags_and_runs_every_runnable_migration() {
    let url = fresh_database("gitlab_current");
    let mut client = connect(&url);
    client.batch_execute(&gitlab_ddl()).unwrap();
    data_tables(&mut client);
    let rows = gitlab_rows(&mut client, true);
    let dict = dictionary();

    let mut tx = client.transaction().unwrap();
    let report = store::install(&mut tx, "main", &strings(&["main", "ci"]), Some(&dict)).unwrap();
    tx.commit().unwrap();
    assert_eq!(report.backfilled, 0);
    assert_eq!(report.mistagged, Some(2), "the two blanket-tagged ci rows");

    // Listing shows the cursor row as runnable and says why the unknown strategy is not.
    let listed = migrations::list(&mut client).unwrap();
    assert_eq!(listed.len(), 9);
    let cursor = listed.iter().find(|m| Some(m.id) == rows.cursor).unwrap();
    assert_eq!((cursor.min_value, cursor.max_value), (None, None));
    assert_eq!(cursor.min_cursor.as_deref(), Some("[0, 100]"));
    assert_eq!(cursor.not_runnable, None);
    let exotic = listed.iter().find(|m| m.id == rows.exotic).unwrap();
    assert!(exotic
        .not_runnable
        .as_deref()
        .unwrap()
        .contains("BackfillPartitionedStagesStrategy"));
    assert!(listed
        .iter()
        .filter(|m| m.id != rows.exotic)
        .all(|m| m.not_runnable.is_none()));

    let mut tx = client.transaction().unwrap();
    let retag = store::retag(&mut tx, &dict, true).unwrap();
    tx.commit().unwrap();
    let changed: Vec<(i64, &str, &str)> = retag
        .changes
        .iter()
        .map(|c| (c.id, c.from.as_str(), c.to.as_str()))
        .collect();
    assert_eq!(
        changed,
        vec![
            (rows.builds, "gitlab_main", "gitlab_ci"),
            (rows.pipelines, "gitlab_main", "gitlab_ci")
        ]
    );
    assert!(retag.applied);

    // A new migration queued through the DSL's path on GitLab's DDL, with its timestamps.
    let mut req = QueueRequest::new("Queued", "projects", "id");
    req.restriction = Some("gitlab_main".into());
    req.job_arguments = r#"["again"]"#.to_string();
    req.job_interval_seconds = 0;
    req.queued_migration_version = Some("20260101000000".into());
    let QueueOutcome::Queued { id: queued, .. } = store::queue(&mut client, &dict, &req).unwrap()
    else {
        panic!("not queued")
    };

    no_waiting(&mut client);
    let mut main = runner(&url, "main");
    let ran = main.run_sql_until_done(sql_for).unwrap();
    assert!(ran > 0);
    assert_eq!(main.claim_next().unwrap(), Claim::Nothing);
    for id in [rows.builds, rows.pipelines, rows.projects, rows.events] {
        assert_eq!(migration_status(&url, id), 3, "migration {id} finished");
    }
    assert_eq!(migration_status(&url, queued), 3);
    assert_eq!(done_counts(&url, "ci_builds"), (0, 400, 0));
    assert_eq!(done_counts(&url, "ci_pipelines"), (0, 250, 0));
    assert_eq!(done_counts(&url, "events"), (0, 120, 0));
    // projects: once by BackfillProjects, once by Queued.
    assert_eq!(done_counts(&url, "projects").0, 0);
    for (id, status) in [
        (rows.paused, 0),
        (rows.failed, 4),
        (rows.finished, 3),
        (rows.exotic, 1),
    ] {
        assert_eq!(migration_status(&url, id), status);
    }
    assert_eq!(migration_status(&url, rows.cursor.unwrap()), 3);
    assert_eq!(done_counts(&url, "issues"), (50, 0, 0));
    assert_eq!(done_counts(&url, "ci_stages"), (0, 30, 0));
    let missing_timestamps: i64 = client
        .query_one(
            "SELECT count(*) FROM batched_background_migration_jobs \
             WHERE created_at IS NULL OR updated_at IS NULL OR updated_at < created_at",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(missing_timestamps, 0);
}

#[test]
fn on_split_databases_retagged_ci_rows_run_on_ci_only() {
    let dict = dictionary();
    let mut urls = vec![];
    for (name, serves) in [("main", "main"), ("ci", "ci")] {
        // Both sides hold the same rows after the split: the database was copied.
        let url = fresh_database(&format!("gitlab_split_{name}"));
        let mut client = connect(&url);
        client.batch_execute(&gitlab_ddl()).unwrap();
        data_tables(&mut client);
        gitlab_rows(&mut client, true);
        let mut tx = client.transaction().unwrap();
        store::install(&mut tx, name, &strings(&[serves]), Some(&dict)).unwrap();
        store::retag(&mut tx, &dict, true).unwrap();
        tx.commit().unwrap();
        no_waiting(&mut client);
        urls.push(url);
    }
    runner(&urls[0], "main")
        .run_sql_until_done(sql_for)
        .unwrap();
    runner(&urls[1], "ci").run_sql_until_done(sql_for).unwrap();
    // main ran main's tables only; its ci tables are stale copies and stay as they were.
    assert_eq!(done_counts(&urls[0], "projects"), (0, 300, 0));
    assert_eq!(done_counts(&urls[0], "events"), (0, 120, 0));
    assert_eq!(done_counts(&urls[0], "ci_builds"), (300, 100, 0));
    assert_eq!(done_counts(&urls[0], "ci_pipelines"), (250, 0, 0));
    assert_eq!(done_counts(&urls[1], "ci_builds"), (0, 400, 0));
    assert_eq!(done_counts(&urls[1], "ci_pipelines"), (0, 250, 0));
    assert_eq!(done_counts(&urls[1], "projects"), (300, 0, 0));
}

#[test]
fn retag_lists_unresolvable_rows_and_writes_nothing() {
    let url = fresh_database("gitlab_retag_bad");
    let mut client = connect(&url);
    client.batch_execute(&gitlab_ddl()).unwrap();
    data_tables(&mut client);
    let rows = gitlab_rows(&mut client, true);
    let mystery = gitlab_migration(
        &mut client,
        "Gone",
        "mystery_table",
        1,
        (1, 5),
        Some("gitlab_main"),
    );
    let dict = dictionary();
    store::install(&mut client, "main", &strings(&["main", "ci"]), Some(&dict)).unwrap();

    let dry = store::retag(&mut client, &dict, false).unwrap();
    assert_eq!(dry.unresolved, vec![(mystery, "mystery_table".to_string())]);
    assert_eq!(dry.changes.len(), 2);
    assert!(!dry.applied);
    let err = store::retag(&mut client, &dict, true).unwrap_err();
    assert!(
        matches!(err, Error::Store(StoreError::UnresolvedRows { .. })),
        "{err}"
    );
    assert!(err.to_string().contains("mystery_table"), "{err}");
    assert_eq!(
        tag_of(&url, rows.builds),
        "gitlab_main",
        "nothing was written"
    );
}

#[test]
fn on_the_2022_shape_install_tags_each_row_from_its_table_and_runs_them() {
    let url = fresh_database("gitlab_2022");
    let mut client = connect(&url);
    // GitLab's tables before gitlab_schema (20220503035221), finished_at, queued_migration_version
    // and the cursors: integer ranges only.
    client.batch_execute(&gitlab_ddl()).unwrap();
    client
        .batch_execute(
            "ALTER TABLE batched_background_migrations DROP COLUMN gitlab_schema, DROP COLUMN finished_at,
                 DROP COLUMN queued_migration_version, DROP COLUMN min_cursor, DROP COLUMN max_cursor,
                 ALTER COLUMN min_value SET NOT NULL, ALTER COLUMN max_value SET NOT NULL;
             ALTER TABLE batched_background_migration_jobs DROP COLUMN min_cursor, DROP COLUMN max_cursor,
                 ALTER COLUMN min_value SET NOT NULL, ALTER COLUMN max_value SET NOT NULL;",
        )
        .unwrap();
    data_tables(&mut client);
    let rows = gitlab_rows(&mut client, false);
    let dict = dictionary();
    let mut tx = client.transaction().unwrap();
    let report = store::install(&mut tx, "main", &strings(&["main", "ci"]), Some(&dict)).unwrap();
    tx.commit().unwrap();
    assert_eq!(report.backfilled, 8);
    assert_eq!(report.mistagged, Some(0));
    assert_eq!(tag_of(&url, rows.builds), "gitlab_ci");
    assert_eq!(tag_of(&url, rows.projects), "gitlab_main");
    assert_eq!(migrations::list(&mut client).unwrap().len(), 8);

    let mut req = QueueRequest::new("Queued", "projects", "id");
    req.restriction = Some("gitlab_main".into());
    req.job_interval_seconds = 0;
    req.queued_migration_version = Some("20260101000000".into());
    assert!(matches!(
        store::queue(&mut client, &dict, &req).unwrap(),
        QueueOutcome::Queued { .. }
    ));
    no_waiting(&mut client);
    let mut main = runner(&url, "main");
    main.run_sql_until_done(sql_for).unwrap();
    assert_eq!(done_counts(&url, "ci_builds"), (0, 400, 0));
    assert_eq!(done_counts(&url, "ci_pipelines"), (0, 250, 0));
    assert_eq!(done_counts(&url, "events"), (0, 120, 0));
    assert_eq!(done_counts(&url, "projects"), (0, 0, 300));
}

#[test]
fn a_migration_on_hold_neither_holds_its_table_nor_is_claimed_by_id() {
    let url = fresh_database("gitlab_hold");
    let mut client = connect(&url);
    client.batch_execute(&gitlab_ddl()).unwrap();
    data_tables(&mut client);
    store::install(&mut client, "main", &strings(&["main", "ci"]), None).unwrap();
    let first = gitlab_migration(
        &mut client,
        "BackfillProjects",
        "projects",
        1,
        (1, 300),
        Some("gitlab_main"),
    );
    let second = gitlab_migration(
        &mut client,
        "Queued",
        "projects",
        1,
        (1, 300),
        Some("gitlab_main"),
    );
    client
        .execute(
            "UPDATE batched_background_migrations SET on_hold_until = now() + interval '1 hour' WHERE id = $1",
            &[&first],
        )
        .unwrap();
    let mut main = runner(&url, "main");
    assert_eq!(main.fetch().unwrap().0, vec![second]);
    assert_eq!(main.claim_migration(first, None).unwrap(), Claim::Nothing);
    let Claim::Batch(batch) = main.claim_to_finalize(first).unwrap() else {
        panic!("a finalize runs regardless of the hold")
    };
    assert_eq!(batch.migration_id, first);
}

#[test]
fn a_cursor_row_that_cannot_run_first_in_queue_order_does_not_block_the_others() {
    let url = fresh_database("gitlab_cursor_first");
    let mut client = connect(&url);
    client.batch_execute(&gitlab_ddl()).unwrap();
    data_tables(&mut client);
    store::install(&mut client, "main", &strings(&["main", "ci"]), None).unwrap();
    // Two cursor values over a one-column primary key: held with why.
    let cursor: i64 = client
        .query_one(
            "INSERT INTO batched_background_migrations (created_at, updated_at, min_value, max_value, \
             min_cursor, max_cursor, batch_size, sub_batch_size, \"interval\", status, job_class_name, \
             table_name, column_name, gitlab_schema) VALUES (now(), now(), NULL, NULL, '[1, 1]', '[300, 1]', 100, 25, \
             0, 1, 'BackfillProjects', 'projects', 'id', 'gitlab_main') RETURNING id",
            &[],
        )
        .unwrap()
        .get(0);
    let other = gitlab_migration(
        &mut client,
        "BackfillEvents",
        "projects",
        1,
        (1, 300),
        Some("gitlab_main"),
    );
    let mut main = runner(&url, "main");
    assert_eq!(main.claim_migration(cursor, None).unwrap(), Claim::Nothing);
    let Claim::Batch(batch) = main.claim_next().unwrap() else {
        panic!("the runnable migration of the same table is claimed")
    };
    assert_eq!(batch.migration_id, other);
}

#[test]
fn a_row_of_a_status_gitlab_no_longer_writes_is_listed_as_not_runnable() {
    let url = fresh_database("gitlab_aborted");
    let mut client = connect(&url);
    client.batch_execute(&gitlab_ddl()).unwrap();
    data_tables(&mut client);
    store::install(&mut client, "main", &strings(&["main", "ci"]), None).unwrap();
    // GitLab's old `aborted` status.
    let aborted = gitlab_migration(
        &mut client,
        "Aborted",
        "projects",
        2,
        (1, 300),
        Some("gitlab_main"),
    );
    let listed = migrations::list(&mut client).unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].id, aborted);
    assert_eq!(listed[0].status, store::Status::Unknown(2));
    assert_eq!(listed[0].not_runnable.as_deref(), Some("unknown status 2"));
}

#[test]
fn how_long_a_job_of_gitlabs_worker_may_stay_untouched_is_configurable() {
    let url = fresh_database("gitlab_stuck_after");
    let mut client = connect(&url);
    client.batch_execute(&gitlab_ddl()).unwrap();
    data_tables(&mut client);
    store::install(&mut client, "main", &strings(&["main", "ci"]), None).unwrap();
    let id = gitlab_migration(
        &mut client,
        "BackfillProjects",
        "projects",
        1,
        (1, 100),
        Some("gitlab_main"),
    );
    gitlab_job(&mut client, id, (1, 100), 1, 1, 0.25);
    assert_eq!(
        runner(&url, "main").claim_next().unwrap(),
        Claim::Nothing,
        "GitLab's hour"
    );
    let options = RunnerOptions {
        stuck_after: std::time::Duration::from_mins(10),
        ..RunnerOptions::default()
    };
    let Claim::Batch(batch) = Runner::new(&url, "main", topology(), options)
        .claim_next()
        .unwrap()
    else {
        panic!("untouched for 15 minutes, past the 10 configured")
    };
    assert_eq!(
        (batch.min_value, batch.max_value, batch.attempts),
        (1, 100, 2)
    );
}
