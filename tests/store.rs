//! The tracking store on a real PostgreSQL: install, identity, upgrade, tagged enqueue.

mod common;

use common::*;
use schema_fence::error::StoreError;
use schema_fence::store::{self, enqueue, identity, QueueOutcome, QueueRequest};
use schema_fence::{Dictionary, Error};

fn dictionary(dir: &std::path::Path) -> Dictionary {
    let path = write(
        dir,
        "map.yml",
        "ci_builds: :gitlab_ci\nprojects: :gitlab_main\nloose_foreign_keys_deleted_records: :gitlab_shared\n\
         schema_migrations: :gitlab_internal\nempty_things: :gitlab_main\n",
    );
    Dictionary::load(&[path]).unwrap()
}

fn strings(names: &[&str]) -> Vec<String> {
    names.iter().map(std::string::ToString::to_string).collect()
}

fn with_tables(client: &mut postgres::Client) {
    client
        .batch_execute(
            "CREATE TABLE ci_builds (id bigint PRIMARY KEY);
             INSERT INTO ci_builds SELECT generate_series(1, 5000);
             CREATE TABLE projects (id bigint PRIMARY KEY);
             INSERT INTO projects SELECT generate_series(10, 20);
             CREATE TABLE empty_things (id bigint PRIMARY KEY);",
        )
        .unwrap();
}

#[test]
fn install_on_a_shared_database_stamps_main_serving_main_and_ci() {
    let mut client = connect(&fresh_database("install_shared"));
    let report = store::install(&mut client, "main", &strings(&["main", "ci"]), None).unwrap();
    assert_eq!(report.identity.name, "main");
    assert_eq!(report.identity.serves, vec!["main", "ci"]);
    assert_eq!(report.identity.epoch, 0);
    // Installing again (e.g. ci's install on the same database) changes nothing.
    let again = store::install(&mut client, "ci", &strings(&["ci"]), None).unwrap();
    assert_eq!(again.identity, report.identity);
    assert_eq!(identity::require(&mut client).unwrap(), report.identity);
}

#[test]
fn install_refuses_a_database_stamped_for_another() {
    let mut client = connect(&fresh_database("install_conflict"));
    store::install(&mut client, "ci", &strings(&["ci"]), None).unwrap();
    let err = store::install(&mut client, "main", &strings(&["main"]), None).unwrap_err();
    assert!(
        matches!(err, Error::Store(StoreError::IdentityConflict { .. })),
        "{err}"
    );
}

#[test]
fn reading_the_identity_of_an_uninstalled_database_says_what_to_do() {
    let mut client = connect(&fresh_database("no_identity"));
    assert_eq!(identity::read(&mut client).unwrap(), None);
    let err = identity::require(&mut client).unwrap_err();
    assert!(err.to_string().contains("install"), "{err}");
}

#[test]
fn a_statement_the_server_refuses_keeps_its_postgres_error_and_sqlstate() {
    use postgres::error::SqlState;
    use store::Db;
    let mut client = connect(&fresh_database("server_errors"));
    let err = Db::query(&mut client, "SELECT * FROM no_such_table", &[]).unwrap_err();
    assert_eq!(err.kind(), "Database");
    assert_eq!(err.code(), Some(&SqlState::UNDEFINED_TABLE));
    assert_eq!(err.sqlstate(), Some("42P01"));
    assert!(err.is_undefined_table());
    let source =
        std::error::Error::source(&err).expect("the PostgreSQL error is kept as the source");
    let postgres = source
        .downcast_ref::<postgres::Error>()
        .expect("the source is postgres::Error");
    assert_eq!(postgres.code(), Some(&SqlState::UNDEFINED_TABLE));
    assert!(err.to_string().contains("no_such_table"), "{err}");

    client.batch_execute("SET statement_timeout = 20").unwrap();
    let err = Db::query(&mut client, "SELECT pg_sleep(1)", &[]).unwrap_err();
    assert!(err.is_statement_timeout(), "{err}");
}

#[test]
fn job_arguments_that_are_not_a_json_array_are_refused_and_nothing_is_queued() {
    let dir = tempfile::tempdir().unwrap();
    let dict = dictionary(dir.path());
    let mut client = connect(&fresh_database("queue_bad_arguments"));
    with_tables(&mut client);
    store::install(&mut client, "ci", &strings(&["ci"]), None).unwrap();
    let mut req = QueueRequest::new("BackfillCiBuilds", "ci_builds", "id");
    req.restriction = Some("gitlab_ci".into());
    for bad in [r#"{"a": 1}"#, "[1,", "\"text\""] {
        req.job_arguments = bad.to_string();
        let err = store::queue(&mut client, &dict, &req).unwrap_err();
        assert!(
            err.to_string()
                .contains("job_arguments: must be a JSON array"),
            "{bad}: {err}"
        );
    }
    assert!(store::migrations::list(&mut client).unwrap().is_empty());
}

#[test]
#[allow(clippy::float_cmp)] // progress is exactly 0.0 or 1.0 here, by definition
fn queueing_tags_reads_max_value_and_is_idempotent() {
    let dir = tempfile::tempdir().unwrap();
    let dict = dictionary(dir.path());
    let mut client = connect(&fresh_database("queue"));
    with_tables(&mut client);
    store::install(&mut client, "ci", &strings(&["ci"]), None).unwrap();
    let mut req = QueueRequest::new("BackfillCiBuilds", "ci_builds", "id");
    req.restriction = Some("gitlab_ci".into());
    req.job_arguments = r#"["a", 1]"#.to_string();
    let first = store::queue(&mut client, &dict, &req).unwrap();
    let QueueOutcome::Queued { id, tag, finished } = first else {
        panic!("{first:?}")
    };
    assert_eq!((tag.as_str(), finished), ("gitlab_ci", false));
    assert_eq!(
        store::queue(&mut client, &dict, &req).unwrap(),
        QueueOutcome::AlreadyQueued {
            id,
            tag: "gitlab_ci".into()
        }
    );
    let rows = store::migrations::list(&mut client).unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(
        (rows[0].min_value, rows[0].max_value),
        (Some(1), Some(5000))
    );
    assert_eq!(rows[0].gitlab_schema, "gitlab_ci");
    assert_eq!(rows[0].progress(), 0.0);
    assert_eq!(enqueue::delete(&mut client, &dict, &req).unwrap(), 1);
    assert!(store::migrations::list(&mut client).unwrap().is_empty());
}

#[test]
#[allow(clippy::float_cmp)] // progress is exactly 0.0 or 1.0 here, by definition
fn an_empty_table_gives_a_migration_that_is_already_finished() {
    let dir = tempfile::tempdir().unwrap();
    let dict = dictionary(dir.path());
    let mut client = connect(&fresh_database("queue_empty"));
    with_tables(&mut client);
    store::install(&mut client, "main", &strings(&["main"]), None).unwrap();
    let mut req = QueueRequest::new("BackfillEmpty", "empty_things", "id");
    req.restriction = Some("gitlab_main".into());
    let outcome = store::queue(&mut client, &dict, &req).unwrap();
    assert!(
        matches!(outcome, QueueOutcome::Queued { finished: true, .. }),
        "{outcome:?}"
    );
    let row = &store::migrations::list(&mut client).unwrap()[0];
    assert_eq!(row.status, store::Status::Finished);
    assert_eq!(row.progress(), 1.0);
}

#[test]
fn a_missing_column_or_table_is_refused_before_anything_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let dict = dictionary(dir.path());
    let mut client = connect(&fresh_database("queue_missing"));
    store::install(&mut client, "main", &strings(&["main"]), None).unwrap();
    let mut req = QueueRequest::new("BackfillProjects", "projects", "id");
    req.restriction = Some("gitlab_main".into());
    let err = store::queue(&mut client, &dict, &req).unwrap_err();
    assert!(
        matches!(err, Error::Store(StoreError::TableNotFound { .. })),
        "{err}"
    );
    with_tables(&mut client);
    req.column_name = "nope\"; DROP TABLE projects; --".into();
    let err = store::queue(&mut client, &dict, &req).unwrap_err();
    assert!(
        matches!(err, Error::Store(StoreError::ColumnNotFound { .. })),
        "{err}"
    );
    assert!(store::migrations::list(&mut client).unwrap().is_empty());
    client
        .query_one("SELECT count(*) FROM projects", &[])
        .unwrap();
}

#[test]
fn upgrading_gitlab_shaped_rows_tags_each_from_its_own_table() {
    let dir = tempfile::tempdir().unwrap();
    let dict = dictionary(dir.path());
    let mut client = connect(&fresh_database("upgrade"));
    client
        .batch_execute(
            "CREATE TABLE batched_background_migrations (id bigserial PRIMARY KEY,
                 created_at timestamptz NOT NULL DEFAULT now(), updated_at timestamptz NOT NULL DEFAULT now(),
                 min_value bigint NOT NULL DEFAULT 1, max_value bigint NOT NULL, batch_size integer NOT NULL,
                 sub_batch_size integer NOT NULL, \"interval\" smallint NOT NULL, status smallint NOT NULL DEFAULT 0,
                 job_class_name text NOT NULL, batch_class_name text NOT NULL DEFAULT 'PrimaryKeyBatchingStrategy',
                 table_name text NOT NULL, column_name text NOT NULL, job_arguments jsonb NOT NULL DEFAULT '[]',
                 total_tuple_count bigint, pause_ms integer NOT NULL DEFAULT 100, max_batch_size integer,
                 started_at timestamptz, on_hold_until timestamptz);
             INSERT INTO batched_background_migrations
                 (max_value, batch_size, sub_batch_size, \"interval\", job_class_name, table_name, column_name)
             VALUES (10, 5, 5, 120, 'A', 'ci_builds', 'id'), (10, 5, 5, 120, 'B', 'projects', 'id'),
                    (10, 5, 5, 120, 'C', 'gitlab_partitions_dynamic.ci_builds_101', 'id');",
        )
        .unwrap();
    let mut tx = client.transaction().unwrap();
    let report = store::install(&mut tx, "main", &strings(&["main", "ci"]), Some(&dict)).unwrap();
    tx.commit().unwrap();
    assert_eq!(report.backfilled, 3);
    let tags: Vec<(String, String)> = client
        .query(
            "SELECT job_class_name, gitlab_schema FROM batched_background_migrations ORDER BY id",
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    assert_eq!(
        tags,
        vec![
            ("A".into(), "gitlab_ci".into()),
            ("B".into(), "gitlab_main".into()),
            ("C".into(), "gitlab_ci".into())
        ]
    );
}

#[test]
fn upgrading_refuses_unresolvable_rows_listing_them_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let dict = dictionary(dir.path());
    let mut client = connect(&fresh_database("upgrade_bad"));
    client
        .batch_execute(
            "CREATE TABLE batched_background_migrations (id bigserial PRIMARY KEY, table_name text NOT NULL);
             INSERT INTO batched_background_migrations (table_name) VALUES ('ci_builds'), ('mystery_table');",
        )
        .unwrap();
    let mut tx = client.transaction().unwrap();
    let err = store::install(&mut tx, "main", &strings(&["main"]), Some(&dict)).unwrap_err();
    drop(tx);
    assert!(
        matches!(err, Error::Store(StoreError::UnresolvedRows { .. })),
        "{err}"
    );
    assert!(err.to_string().contains("id 2 (mystery_table)"), "{err}");
    let columns: i64 = client
        .query_one(
            "SELECT count(*) FROM information_schema.columns WHERE table_name = 'batched_background_migrations'",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(columns, 2);
}

#[test]
fn a_status_change_succeeds_only_from_the_statuses_that_allow_it() {
    use store::Status;
    let dir = tempfile::tempdir().unwrap();
    let dict = dictionary(dir.path());
    let mut client = connect(&fresh_database("conditional_status"));
    with_tables(&mut client);
    store::install(&mut client, "ci", &strings(&["ci"]), None).unwrap();
    let mut req = QueueRequest::new("BackfillCiBuilds", "ci_builds", "id");
    req.restriction = Some("gitlab_ci".into());
    let QueueOutcome::Queued { id, .. } = store::queue(&mut client, &dict, &req).unwrap() else {
        panic!("not queued")
    };
    let status = |c: &mut postgres::Client| store::migrations::list(c).unwrap()[0].status;
    assert!(store::migrations::set_status(&mut client, id, Status::Paused).unwrap());
    assert!(!store::migrations::set_status(&mut client, id, Status::Paused).unwrap());
    assert!(store::migrations::set_status(&mut client, id, Status::Active).unwrap());
    // A runner finished it meanwhile: a pause read before that must not overwrite it.
    client
        .execute(
            "UPDATE batched_background_migrations SET status = 3 WHERE id = $1",
            &[&id],
        )
        .unwrap();
    assert!(!store::migrations::set_status(&mut client, id, Status::Paused).unwrap());
    assert_eq!(status(&mut client), Status::Finished);
    assert!(!store::migrations::set_status(&mut client, id, Status::Active).unwrap());
    assert!(store::migrations::set_status(&mut client, id, Status::Finalized).unwrap());
    assert_eq!(status(&mut client), Status::Finalized);
}

#[test]
fn an_operators_change_succeeds_only_from_the_status_it_read() {
    use store::steering::{change_status, retry_failed, Retried};
    use store::Status;
    let dir = tempfile::tempdir().unwrap();
    let dict = dictionary(dir.path());
    let mut client = connect(&fresh_database("steering"));
    with_tables(&mut client);
    store::install(&mut client, "ci", &strings(&["ci"]), None).unwrap();
    let mut req = QueueRequest::new("BackfillCiBuilds", "ci_builds", "id");
    req.restriction = Some("gitlab_ci".into());
    let QueueOutcome::Queued { id, .. } = store::queue(&mut client, &dict, &req).unwrap() else {
        panic!("not queued")
    };
    let status = |c: &mut postgres::Client| store::migrations::list(c).unwrap()[0].status;
    let runner_writes = |c: &mut postgres::Client, code: i16| {
        c.execute(
            "UPDATE batched_background_migrations SET status = $2 WHERE id = $1",
            &[&id, &code],
        )
        .unwrap();
    };
    assert!(change_status(&mut client, id, Status::Active, Status::Paused).unwrap());
    // Read paused; a runner's last batch failed the migration meanwhile: resume changes nothing.
    runner_writes(&mut client, 4);
    assert!(!change_status(&mut client, id, Status::Paused, Status::Active).unwrap());
    assert_eq!(status(&mut client), Status::Failed);
    // A move the transition table does not have is refused as such, not tried.
    let refused = change_status(&mut client, id, Status::Failed, Status::Paused).unwrap_err();
    assert!(
        refused
            .to_string()
            .contains("cannot be moved from failed to paused"),
        "{refused}"
    );

    client
        .execute(
            "INSERT INTO batched_background_migration_jobs (batched_background_migration_id, \
             min_value, max_value, batch_size, sub_batch_size, pause_ms, status, attempts, \
             created_at, updated_at) VALUES ($1, 1, 10, 10, 10, 0, 2, 3, now(), now())",
            &[&id],
        )
        .unwrap();
    // Read active (with a failed batch); the runner failed the migration since: no retry.
    assert_eq!(retry_failed(&mut client, id, Status::Active).unwrap(), None);
    assert_eq!(
        retry_failed(&mut client, id, Status::Failed).unwrap(),
        Some(Retried {
            status: Status::Active,
            batches: 1
        })
    );
    let (job_status, attempts): (i16, i16) = {
        let row = client
            .query_one(
                "SELECT status, attempts FROM batched_background_migration_jobs \
                 WHERE batched_background_migration_id = $1",
                &[&id],
            )
            .unwrap();
        (row.get(0), row.get(1))
    };
    assert_eq!((job_status, attempts), (0, 0));
    runner_writes(&mut client, 3);
    assert!(retry_failed(&mut client, id, Status::Finished).is_err());
    assert!(change_status(&mut client, id, Status::Finished, Status::Finalized).unwrap());
}
