//! Fencing, the fetch and the batch runner on real PostgreSQL.

mod common;

use std::time::Duration;

use common::*;
use schema_fence::error::RunnerError;
use schema_fence::runner::{Claim, Completion, Fence, Runner, RunnerOptions};
use schema_fence::store::{self, QueueRequest};
use schema_fence::{Dictionary, Error, Topology};

fn topology() -> Topology {
    Topology::load(&gitlab_fixtures().join("database_connections")).unwrap()
}

fn dictionary() -> Dictionary {
    Dictionary::load(&[gitlab_fixtures().join("gitlab_schemas.yml")]).unwrap()
}

fn strings(names: &[&str]) -> Vec<String> {
    names.iter().map(std::string::ToString::to_string).collect()
}

/// A database with the tracking tables, a `ci_builds` and a `projects` table of `rows` rows each
/// (with a `done` counter the SQL job increments), and one migration queued per table.
fn database(prefix: &str, name: &str, serves: &[&str], rows: i64) -> String {
    let url = fresh_database(prefix);
    let mut client = connect(&url);
    client
        .batch_execute(&format!(
            "CREATE TABLE ci_builds (id bigint PRIMARY KEY, done int NOT NULL DEFAULT 0);
             INSERT INTO ci_builds (id) SELECT generate_series(1, {rows});
             CREATE TABLE projects (id bigint PRIMARY KEY, done int NOT NULL DEFAULT 0);
             INSERT INTO projects (id) SELECT generate_series(1, {rows});"
        ))
        .unwrap();
    store::install(&mut client, name, &strings(serves), None).unwrap();
    url
}

fn queue(url: &str, table: &str, schema: &str, batch: i64, sub: i64) -> i64 {
    let mut client = connect(url);
    let mut req = QueueRequest::new(&format!("Backfill{table}"), table, "id");
    req.restriction = Some(schema.into());
    req.job_interval_seconds = 0;
    req.batch_size = batch;
    req.sub_batch_size = sub;
    req.pause_ms = 0;
    match store::queue(&mut client, &dictionary(), &req).unwrap() {
        store::QueueOutcome::Queued { id, .. } => id,
        other @ store::QueueOutcome::AlreadyQueued { .. } => panic!("{other:?}"),
    }
}

fn runner(url: &str, database: &str) -> Runner {
    Runner::new(url, database, topology(), RunnerOptions::default())
}

fn increment(table: &str) -> String {
    format!("UPDATE {table} SET done = done + 1 WHERE id BETWEEN $1 AND $2")
}

mod fencing {
    use super::*;

    #[test]
    fn with_ci_sharing_mains_database_ci_idles_and_main_runs_both() {
        let url = database("fence_shared", "main", &["main", "ci"], 100);
        queue(&url, "ci_builds", "gitlab_ci", 50, 25);
        queue(&url, "projects", "gitlab_main", 50, 25);
        assert_eq!(
            runner(&url, "ci").claim_next().unwrap(),
            Claim::Idle {
                owner: "main".into()
            }
        );
        let mut main = runner(&url, "main");
        let ran = main
            .run_sql_until_done(|class| match class {
                "Backfillci_builds" => Some(increment("ci_builds")),
                "Backfillprojects" => Some(increment("projects")),
                _ => None,
            })
            .unwrap();
        assert_eq!(ran, 4);
        assert_eq!(done_counts(&url, "ci_builds"), (0, 100, 0));
        assert_eq!(done_counts(&url, "projects"), (0, 100, 0));
    }

    #[test]
    fn on_split_databases_each_worker_takes_only_its_own_schemas() {
        let url = database("fence_split", "ci", &["ci"], 100);
        let ci_id = queue(&url, "ci_builds", "gitlab_ci", 100, 50);
        // A row left behind for main's schema (as after a split) is stale here.
        let mut client = connect(&url);
        client
            .execute(
                "INSERT INTO batched_background_migrations (created_at, updated_at, job_class_name, table_name, \
                 column_name, gitlab_schema, \"interval\", batch_size, sub_batch_size, min_value, max_value, status) \
                 VALUES (now(), now(), 'Stale', 'projects', 'id', 'gitlab_main', 0, 10, 10, 1, 100, 1)",
                &[],
            )
            .unwrap();
        let mut ci = runner(&url, "ci");
        let Claim::Batch(batch) = ci.claim_next().unwrap() else {
            panic!()
        };
        assert_eq!(batch.migration_id, ci_id);
        assert_eq!(
            ci.fence().unwrap(),
            Fence::Work {
                allowed: strings(&[
                    "gitlab_ci",
                    "gitlab_ci_cell_local",
                    "gitlab_internal",
                    "gitlab_shared"
                ]),
                epoch: 0
            }
        );
        ci.complete(&batch, "{}").unwrap();
        assert_eq!(
            ci.claim_next().unwrap(),
            Claim::Nothing,
            "the stale gitlab_main row is never fetched"
        );
    }

    #[test]
    fn a_ci_connection_pointed_at_main_after_the_split_is_refused() {
        let url = database("fence_misrouted", "main", &["main"], 10);
        queue(&url, "projects", "gitlab_main", 10, 10);
        let err = runner(&url, "ci").claim_next().unwrap_err();
        assert!(
            matches!(err, Error::Runner(RunnerError::MisroutedConnection { .. })),
            "{err}"
        );
        let jobs: i64 = connect(&url)
            .query_one(
                "SELECT count(*) FROM batched_background_migration_jobs",
                &[],
            )
            .unwrap()
            .get(0);
        assert_eq!(jobs, 0);
    }

    #[test]
    fn a_claim_after_the_epoch_changed_since_the_fetch_is_refused() {
        let url = database("fence_epoch", "main", &["main"], 10);
        let id = queue(&url, "projects", "gitlab_main", 10, 10);
        let mut main = runner(&url, "main");
        let (ids, epoch) = main.fetch().unwrap();
        assert_eq!(ids, vec![id]);
        connect(&url)
            .execute(
                &format!(
                    "UPDATE schema_fence_identity SET epoch = epoch + 1 FROM {}",
                    schema_fence::store::schema::STAMP
                ),
                &[],
            )
            .unwrap();
        let err = main.claim_migration(id, Some(epoch)).unwrap_err();
        assert!(
            matches!(
                err,
                Error::Runner(RunnerError::EpochChanged {
                    expected: 0,
                    found: 1,
                    ..
                })
            ),
            "{err}"
        );
        assert!(matches!(
            main.claim_migration(id, Some(1)).unwrap(),
            Claim::Batch(_)
        ));
    }
}

mod the_fetch {
    use super::*;

    #[test]
    fn uses_an_index_with_100_000_rows_half_of_them_stale() {
        let url = database("fetch_plan", "main", &["main"], 10);
        let mut client = connect(&url);
        client
            .batch_execute(
                "INSERT INTO batched_background_migrations (created_at, updated_at, job_class_name, table_name, \
                 column_name, gitlab_schema, \"interval\", batch_size, sub_batch_size, min_value, max_value, status)
                 SELECT now(), now(), 'Job' || i, 'table_' || (i % 500), 'id', CASE WHEN i % 2 = 0 THEN 'gitlab_ci' ELSE 'gitlab_main' END,
                        120, 1000, 100, 1, 1000000, CASE WHEN i % 10 = 0 THEN 1 ELSE 3 END
                 FROM generate_series(1, 100000) i;
                 ANALYZE batched_background_migrations;",
            )
            .unwrap();
        let allowed = strings(&["gitlab_main", "gitlab_shared", "gitlab_internal"]);
        // The statement the runner sends, with the generic plan it runs with.
        client
            .batch_execute(&format!(
                "SET plan_cache_mode = force_generic_plan; PREPARE fence_fetch(text[], bigint) AS {}",
                schema_fence::runner::sql::FETCH_WITH_IDENTITY
            ))
            .unwrap();
        let plan: Vec<String> = client
            .query(
                &format!(
                    "EXPLAIN EXECUTE fence_fetch('{{{}}}', 8)",
                    allowed.join(",")
                ),
                &[],
            )
            .unwrap()
            .iter()
            .map(|r| r.get(0))
            .collect();
        let plan = plan.join("\n");
        assert!(
            !plan.contains("Seq Scan on batched_background_migrations"),
            "{plan}"
        );
        assert!(plan.contains("Index"), "{plan}");
    }
}

mod batches {
    use super::*;

    #[test]
    fn a_sql_job_covers_every_key_exactly_once_and_finishes_the_migration() {
        let url = database("sql_job", "main", &["main"], 2_345);
        let id = queue(&url, "projects", "gitlab_main", 500, 120);
        let mut main = runner(&url, "main");
        let ran = main
            .run_sql_until_done(|_| Some(increment("projects")))
            .unwrap();
        assert_eq!(ran, 5);
        assert_eq!(done_counts(&url, "projects"), (0, 2_345, 0));
        assert_eq!(migration_status(&url, id), 3);
    }

    #[test]
    fn a_batch_of_consecutive_keys_runs_its_sub_batches_without_walking_them() {
        let url = database("dense", "main", &["main"], 1_000);
        // Keys 1..=1000 with 401..=450 deleted: the first batch is dense, the second is not.
        connect(&url)
            .batch_execute("DELETE FROM projects WHERE id BETWEEN 401 AND 450")
            .unwrap();
        queue(&url, "projects", "gitlab_main", 300, 100);
        let mut main = runner(&url, "main");
        let mut batches = vec![];
        while let Claim::Batch(batch) = main.claim_next().unwrap() {
            let report = main.run_sql_batch(&batch, &increment("projects")).unwrap();
            main.complete(&batch, &report.metrics_json()).unwrap();
            batches.push((batch, report));
        }
        let seen: Vec<(i64, i64, bool)> = batches
            .iter()
            .map(|(b, _)| (b.min_value, b.max_value, b.dense))
            .collect();
        assert_eq!(
            seen,
            vec![
                (1, 300, true),
                (301, 650, false),
                (651, 950, true),
                (951, 1_000, false)
            ]
        );
        assert_eq!(
            batches[0].0.consecutive_sub_batches(),
            Some(vec![(1, 100), (101, 200), (201, 300)])
        );
        assert_eq!(batches[1].0.consecutive_sub_batches(), None);
        // The sparse batch walks its keys: sub-batches of 100 keys that are there.
        let sub_batches: Vec<u32> = batches.iter().map(|(_, r)| r.sub_batches).collect();
        assert_eq!(sub_batches, vec![3, 3, 3, 1]);
        assert_eq!(done_counts(&url, "projects"), (0, 950, 0));
    }

    #[test]
    fn a_migration_paused_while_its_last_batch_ran_stays_paused_and_finishes_after_its_resume() {
        let url = database("paused_last", "main", &["main"], 100);
        let id = queue(&url, "projects", "gitlab_main", 100, 100);
        let mut main = runner(&url, "main");
        let Claim::Batch(last) = main.claim_next().unwrap() else {
            panic!("expected the only batch")
        };
        let mut operator = connect(&url);
        let paused = store::steering::change_status(
            &mut operator,
            id,
            store::Status::Active,
            store::Status::Paused,
        )
        .unwrap();
        assert!(paused);
        assert_eq!(main.complete(&last, "{}").unwrap(), Completion::Recorded);
        assert_eq!(migration_status(&url, id), 0, "the operator's pause stands");
        assert_eq!(main.claim_next().unwrap(), Claim::Nothing);

        let resumed = store::steering::change_status(
            &mut operator,
            id,
            store::Status::Paused,
            store::Status::Active,
        )
        .unwrap();
        assert!(resumed);
        assert_eq!(
            main.claim_next().unwrap(),
            Claim::Nothing,
            "nothing left to hand out"
        );
        assert_eq!(
            migration_status(&url, id),
            3,
            "finished by the first claim after the resume"
        );
    }

    #[test]
    fn an_expired_lease_lets_another_worker_redo_the_batch() {
        let url = database("lease", "main", &["main"], 100);
        queue(&url, "projects", "gitlab_main", 100, 100);
        let short = RunnerOptions {
            lease: Duration::from_millis(300),
            ..RunnerOptions::default()
        };
        let mut dead = Runner::new(&url, "main", topology(), short.clone());
        let Claim::Batch(first) = dead.claim_next().unwrap() else {
            panic!()
        };
        let mut alive = Runner::new(&url, "main", topology(), short);
        assert_eq!(
            alive.claim_next().unwrap(),
            Claim::Nothing,
            "the lease is live"
        );
        std::thread::sleep(Duration::from_millis(600));
        let Claim::Batch(again) = alive.claim_next().unwrap() else {
            panic!()
        };
        assert_eq!((again.job_id, again.attempts), (first.job_id, 2));
        assert_eq!(dead.complete(&first, "{}").unwrap(), Completion::LeaseLost);
        assert_eq!(
            alive.complete(&again, "{}").unwrap(),
            Completion::MigrationFinished
        );
    }

    #[test]
    fn a_batch_whose_worker_keeps_dying_is_not_claimed_past_its_attempts() {
        let url = database("lease_attempts", "main", &["main"], 10);
        let id = queue(&url, "projects", "gitlab_main", 10, 10);
        let short = RunnerOptions {
            lease: Duration::from_millis(200),
            ..RunnerOptions::default()
        };
        // Each worker claims the batch and dies (never completes): the lease expires.
        for attempt in 1..=3 {
            let mut dying = Runner::new(&url, "main", topology(), short.clone());
            let Claim::Batch(batch) = dying.claim_next().unwrap() else {
                panic!("attempt {attempt}")
            };
            assert_eq!(batch.attempts, attempt);
            std::thread::sleep(Duration::from_millis(300));
        }
        let mut last = Runner::new(&url, "main", topology(), short);
        assert_eq!(last.claim_next().unwrap(), Claim::Nothing);
        let (status_, attempts, error): (i16, i16, Option<String>) = connect(&url)
            .query_one(
                "SELECT status, attempts, metrics->>'error' FROM batched_background_migration_jobs",
                &[],
            )
            .map(|r| (r.get(0), r.get(1), r.get(2)))
            .unwrap();
        assert_eq!((status_, attempts), (2, 3), "failed for good at the limit");
        assert!(error.unwrap().contains("abandoned"));
        assert_eq!(migration_status(&url, id), 4, "the migration failed");
        assert_eq!(done_counts(&url, "projects"), (10, 0, 0));
    }

    #[test]
    fn a_job_left_running_by_gitlabs_own_worker_is_claimed_again_after_an_hour() {
        let url = database("gitlab_stuck", "main", &["main"], 10);
        let id = queue(&url, "projects", "gitlab_main", 10, 10);
        let mut client = connect(&url);
        // As GitLab's worker leaves it when it dies: running, no lease of ours.
        client
            .execute(
                "INSERT INTO batched_background_migration_jobs (batched_background_migration_id, \
                 min_value, max_value, batch_size, sub_batch_size, status, attempts, created_at, \
                 updated_at) VALUES ($1, 1, 10, 10, 10, 1, 1, now(), now() - interval '50 minutes')",
                &[&id],
            )
            .unwrap();
        let mut main = runner(&url, "main");
        assert_eq!(main.claim_next().unwrap(), Claim::Nothing, "not stuck yet");
        client
            .execute(
                "UPDATE batched_background_migration_jobs SET updated_at = now() - interval '61 minutes'",
                &[],
            )
            .unwrap();
        let Claim::Batch(batch) = main.claim_next().unwrap() else {
            panic!("the stuck job is claimed again")
        };
        assert_eq!(
            (batch.min_value, batch.max_value, batch.attempts),
            (1, 10, 2)
        );
    }

    #[test]
    fn a_batch_carries_the_place_it_was_claimed_on() {
        let url = database("reach", "main", &["main"], 10);
        queue(&url, "projects", "gitlab_main", 10, 10);
        let mut main = runner(&url, "main");
        let Claim::Batch(batch) = main.claim_next().unwrap() else {
            panic!()
        };
        let row = connect(&url)
            .query_one(schema_fence::runner::reach::REACH, &[])
            .unwrap();
        let seen = schema_fence::runner::Reach {
            identity_name: row.get(0),
            epoch: row.get(1),
            place: schema_fence::runner::Place {
                system_identifier: row.get(2),
                database_oid: row.get(3),
            },
        };
        assert_eq!(batch.reach, seen);
        assert_ne!(seen.place.system_identifier, 0);
        let other = database("reach_other", "main", &["main"], 10);
        let row = connect(&other)
            .query_one(schema_fence::runner::reach::REACH, &[])
            .unwrap();
        let elsewhere = schema_fence::runner::Reach {
            identity_name: row.get(0),
            epoch: row.get(1),
            place: schema_fence::runner::Place {
                system_identifier: row.get(2),
                database_oid: row.get(3),
            },
        };
        let err =
            schema_fence::runner::reach::check("main", batch.job_id, &batch.reach, &elsewhere)
                .unwrap_err();
        assert_eq!(err.kind(), "JobConnectionMismatch");
    }

    #[test]
    fn a_batch_no_larger_than_its_sub_batch_is_not_split_on_timeout() {
        let url = database("no_split", "main", &["main"], 100);
        queue(&url, "projects", "gitlab_main", 100, 100);
        let mut main = runner(&url, "main");
        let Claim::Batch(batch) = main.claim_next().unwrap() else {
            panic!()
        };
        main.fail(&batch, "canceling statement due to statement timeout", true)
            .unwrap();
        let jobs: Vec<(i64, i64, i16)> = connect(&url)
            .query(
                "SELECT min_value, max_value, status FROM batched_background_migration_jobs",
                &[],
            )
            .unwrap()
            .iter()
            .map(|r| (r.get(0), r.get(1), r.get(2)))
            .collect();
        assert_eq!(
            jobs,
            vec![(1, 100, 2)],
            "one failed job, as GitLab leaves it"
        );
    }

    #[test]
    fn a_statement_timeout_splits_the_batch_in_two() {
        let url = database("split", "main", &["main"], 100);
        queue(&url, "projects", "gitlab_main", 100, 25);
        let mut main = runner(&url, "main");
        let Claim::Batch(batch) = main.claim_next().unwrap() else {
            panic!()
        };
        assert_eq!(
            main.fail(&batch, "canceling statement due to statement timeout", true)
                .unwrap(),
            Completion::Recorded
        );
        let ranges: Vec<(i64, i64, i16)> = connect(&url)
            .query("SELECT min_value, max_value, status FROM batched_background_migration_jobs ORDER BY min_value", &[])
            .unwrap()
            .iter()
            .map(|r| (r.get(0), r.get(1), r.get(2)))
            .collect();
        assert_eq!(ranges, vec![(1, 50, 0), (51, 100, 0)]);
        let ran = main
            .run_sql_until_done(|_| Some(increment("projects")))
            .unwrap();
        assert_eq!(ran, 2);
        assert_eq!(done_counts(&url, "projects"), (0, 100, 0));
    }

    #[test]
    fn a_batch_that_keeps_failing_fails_the_migration_after_its_attempts() {
        let url = database("attempts", "main", &["main"], 10);
        let id = queue(&url, "projects", "gitlab_main", 10, 10);
        let mut main = runner(&url, "main");
        for attempt in 1..=3 {
            let Claim::Batch(batch) = main.claim_next().unwrap() else {
                panic!("attempt {attempt}")
            };
            assert_eq!(batch.attempts, attempt);
            main.fail(&batch, "boom", false).unwrap();
        }
        assert_eq!(main.claim_next().unwrap(), Claim::Nothing);
        assert_eq!(migration_status(&url, id), 4);
    }

    #[test]
    fn more_than_half_of_50_jobs_failing_fails_the_migration() {
        let url = database("ratio", "main", &["main"], 60);
        let id = queue(&url, "projects", "gitlab_main", 1, 1);
        let mut main = runner(&url, "main");
        let mut last = Completion::Recorded;
        // Two keys in three always fail: their jobs fail for good once their attempts are used.
        for n in 0..200 {
            let Claim::Batch(batch) = main.claim_next().unwrap() else {
                panic!("claim {n}")
            };
            last = if batch.min_value % 3 == 0 {
                main.complete(&batch, "{}").unwrap()
            } else {
                main.fail(&batch, "boom", false).unwrap()
            };
            if last == Completion::MigrationFailed {
                break;
            }
        }
        assert_eq!(last, Completion::MigrationFailed);
        assert_eq!(migration_status(&url, id), 4);
    }
}
