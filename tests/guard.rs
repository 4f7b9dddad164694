//! The statement guard (docs/architecture.md section 9): which tables a statement reads and writes, and
//! which statements a connection of `main` (`gitlab_main`, `gitlab_shared`, `gitlab_internal`) running
//! a `gitlab_main` migration may send.

use std::sync::Arc;

use schema_fence::error::GuardError;
use schema_fence::guard::{self, Guard, Tables};
use schema_fence::{Dictionary, Error};

fn dictionary() -> (tempfile::TempDir, Arc<Dictionary>) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("gitlab_schemas.yml");
    std::fs::write(
        &path,
        "projects: :gitlab_main\n\
         namespaces: :gitlab_main\n\
         issues: :gitlab_main\n\
         users: :gitlab_main\n\
         ci_builds: :gitlab_ci\n\
         ci_pipelines: :gitlab_ci\n\
         p_ci_job_annotations: :gitlab_ci\n\
         loose_foreign_keys_deleted_records: :gitlab_shared\n\
         batched_background_migrations: :gitlab_shared\n\
         schema_migrations: :gitlab_internal\n",
    )
    .unwrap();
    let dict = Dictionary::load(&[path]).unwrap();
    (dir, Arc::new(dict))
}

fn main_guard() -> (tempfile::TempDir, Guard) {
    let (dir, dict) = dictionary();
    let allowed = ["gitlab_main", "gitlab_shared", "gitlab_internal"].map(String::from);
    (
        dir,
        Guard::new(dict, allowed.to_vec(), "gitlab_main".into()),
    )
}

fn tables(sql: &str) -> (Vec<String>, Vec<String>) {
    let Tables {
        mut read,
        mut written,
    } = guard::tables(sql).unwrap();
    read.sort();
    written.sort();
    (read, written)
}

fn names(list: &[&str]) -> Vec<String> {
    let mut v: Vec<String> = list.iter().map(std::string::ToString::to_string).collect();
    v.sort();
    v
}

#[track_caller]
fn assert_tables(sql: &str, read: &[&str], written: &[&str]) {
    assert_eq!(
        tables(sql),
        (names(read), names(written)),
        "tables of {sql}"
    );
}

/// The refused table, its schema and whether it was written.
#[track_caller]
fn refused(guard: &Guard, sql: &str) -> (String, Option<String>, bool) {
    match guard.check(sql) {
        Err(Error::Guard(GuardError::CrossDatabaseAccess {
            table,
            table_schema,
            written,
            ..
        })) => (table, table_schema, written),
        other => panic!("expected CrossDatabaseAccess for {sql}, got {other:?}"),
    }
}

#[test]
fn reads_and_writes_of_every_statement_shape() {
    assert_tables("SELECT * FROM projects WHERE id = $1", &["projects"], &[]);
    assert_tables(
        "SELECT p.id FROM projects p JOIN namespaces n ON n.id = p.namespace_id LEFT JOIN users u USING (id)",
        &["projects", "namespaces", "users"],
        &[],
    );
    assert_tables(
        "SELECT * FROM projects WHERE namespace_id IN (SELECT id FROM namespaces WHERE EXISTS (SELECT 1 FROM users))",
        &["projects", "namespaces", "users"],
        &[],
    );
    assert_tables(
        "SELECT * FROM (SELECT * FROM issues) sub, LATERAL (SELECT * FROM users WHERE users.id = sub.author_id) u",
        &["issues", "users"],
        &[],
    );
    assert_tables("SELECT * FROM projects FOR UPDATE", &["projects"], &[]);
    assert_tables(
        "SELECT * FROM projects p FOR UPDATE OF p SKIP LOCKED",
        &["projects"],
        &[],
    );
    assert_tables(
        "INSERT INTO issues (id) VALUES ($1) ON CONFLICT (id) DO UPDATE SET id = (SELECT max(id) FROM users)",
        &["users"],
        &["issues"],
    );
    assert_tables(
        "INSERT INTO issues (id, project_id) SELECT id, project_id FROM ci_builds",
        &["ci_builds"],
        &["issues"],
    );
    assert_tables(
        "UPDATE projects SET name = n.name FROM namespaces n WHERE n.id = projects.namespace_id RETURNING (SELECT 1 FROM users LIMIT 1)",
        &["namespaces", "users"],
        &["projects"],
    );
    assert_tables(
        "DELETE FROM issues USING projects WHERE issues.project_id = projects.id",
        &["projects"],
        &["issues"],
    );
    assert_tables(
        "MERGE INTO issues i USING projects p ON i.project_id = p.id \
         WHEN MATCHED AND EXISTS (SELECT 1 FROM users) THEN UPDATE SET title = 'x' \
         WHEN NOT MATCHED THEN INSERT (id) VALUES (p.id)",
        &["projects", "users"],
        &["issues"],
    );
    assert_tables(
        "TRUNCATE issues, public.users",
        &[],
        &["issues", "public.users"],
    );
    assert_tables(
        "SELECT * INTO new_table FROM projects",
        &["projects"],
        &["new_table"],
    );
    assert_tables("COPY issues FROM STDIN", &[], &["issues"]);
    assert_tables("COPY (SELECT * FROM issues) TO STDOUT", &["issues"], &[]);
    assert_tables("EXPLAIN ANALYZE DELETE FROM issues", &[], &["issues"]);
    assert_tables(
        "SELECT * FROM public.projects, gitlab_partitions_dynamic.ci_builds_101",
        &["public.projects", "gitlab_partitions_dynamic.ci_builds_101"],
        &[],
    );
    assert_tables(
        "SELECT id FROM projects UNION SELECT id FROM issues EXCEPT SELECT id FROM users",
        &["projects", "issues", "users"],
        &[],
    );
}

#[test]
fn ctes_are_not_tables_but_their_bodies_are_read() {
    assert_tables(
        "WITH recent AS (SELECT * FROM issues) SELECT * FROM recent JOIN projects ON true",
        &["issues", "projects"],
        &[],
    );
    // A data-modifying CTE writes its target.
    assert_tables(
        "WITH moved AS (DELETE FROM issues WHERE id < 10 RETURNING *) \
         INSERT INTO projects SELECT * FROM moved",
        &[],
        &["issues", "projects"],
    );
    // A non-recursive CTE does not see itself: its body reads the table of the same name.
    assert_tables(
        "WITH issues AS (SELECT * FROM issues WHERE id > 1) SELECT * FROM issues",
        &["issues"],
        &[],
    );
    // A recursive one does.
    assert_tables(
        "WITH RECURSIVE tree AS (SELECT id FROM namespaces UNION ALL SELECT n.id FROM namespaces n JOIN tree t ON n.parent_id = t.id) \
         SELECT * FROM tree",
        &["namespaces"],
        &[],
    );
    // A CTE name hides a table only inside its own statement.
    assert_tables(
        "SELECT * FROM (WITH ci_builds AS (SELECT 1) SELECT * FROM ci_builds) x, ci_builds",
        &["ci_builds"],
        &[],
    );
    // A CTE cannot be a DML target: `UPDATE x` names the table x even when a CTE is called x.
    assert_tables(
        "WITH issues AS (SELECT 1) UPDATE issues SET id = 1",
        &[],
        &["issues"],
    );
    // A schema-qualified name never names a CTE.
    assert_tables(
        "WITH projects AS (SELECT 1) SELECT * FROM public.projects, projects",
        &["public.projects"],
        &[],
    );
    // CTEs in subqueries and later CTEs seeing earlier ones.
    assert_tables(
        "WITH a AS (SELECT * FROM users), b AS (SELECT * FROM a JOIN issues ON true) \
         SELECT * FROM b WHERE EXISTS (WITH c AS (SELECT * FROM projects) SELECT * FROM c, a)",
        &["users", "issues", "projects"],
        &[],
    );
}

#[test]
fn statements_without_tables_list_none() {
    for sql in [
        "SET statement_timeout = 0",
        "SELECT 1",
        "BEGIN",
        "COMMIT",
        "SAVEPOINT s1",
        "RELEASE SAVEPOINT s1",
        "SHOW search_path",
        "SELECT now(), $1::int",
        "",
        "-- just a comment",
    ] {
        assert!(guard::tables(sql).unwrap().is_empty(), "{sql}");
    }
}

#[test]
fn every_statement_of_a_multi_statement_string_is_read() {
    assert_tables(
        "SELECT 1 FROM projects; DELETE FROM issues; SELECT * FROM ci_builds",
        &["projects", "ci_builds"],
        &["issues"],
    );
    let (_dir, guard) = main_guard();
    assert_eq!(
        refused(&guard, "SELECT 1 FROM projects; SELECT * FROM ci_builds").0,
        "ci_builds"
    );
}

#[test]
fn a_main_guard_allows_main_shared_and_internal_tables() {
    let (_dir, guard) = main_guard();
    for sql in [
        "SELECT * FROM projects WHERE id BETWEEN $1 AND $2",
        "UPDATE projects SET name = n.name FROM namespaces n WHERE n.id = projects.namespace_id",
        "INSERT INTO loose_foreign_keys_deleted_records (id) SELECT id FROM projects",
        "DELETE FROM loose_foreign_keys_deleted_records WHERE id = 1",
        "INSERT INTO schema_migrations (version) VALUES ('1')",
        "SELECT * FROM public.projects",
        "SELECT * FROM pg_class JOIN pg_catalog.pg_index ON true",
        "SELECT * FROM information_schema.columns",
        "WITH x AS (SELECT * FROM issues) SELECT * FROM x",
        "SET lock_timeout = '1s'; SELECT 1",
        "BEGIN",
    ] {
        guard.check(sql).unwrap_or_else(|e| panic!("{sql}: {e}"));
    }
}

#[test]
fn a_main_guard_refuses_ci_tables_however_they_are_reached() {
    let (_dir, guard) = main_guard();
    let ci = Some("gitlab_ci".to_string());
    for (sql, table, written) in [
        ("SELECT * FROM ci_builds", "ci_builds", false),
        ("SELECT * FROM ci_builds FOR UPDATE", "ci_builds", false),
        (
            "SELECT * FROM projects JOIN ci_pipelines ON true",
            "ci_pipelines",
            false,
        ),
        (
            "SELECT * FROM projects WHERE id IN (SELECT project_id FROM ci_builds)",
            "ci_builds",
            false,
        ),
        (
            "WITH b AS (SELECT * FROM ci_builds) SELECT * FROM b",
            "ci_builds",
            false,
        ),
        (
            "INSERT INTO issues SELECT * FROM ci_builds",
            "ci_builds",
            false,
        ),
        (
            "UPDATE projects SET x = 1 FROM ci_pipelines WHERE true",
            "ci_pipelines",
            false,
        ),
        (
            "DELETE FROM projects USING ci_builds WHERE true",
            "ci_builds",
            false,
        ),
        ("DELETE FROM ci_builds", "ci_builds", true),
        ("TRUNCATE ci_builds", "ci_builds", true),
        (
            "WITH d AS (DELETE FROM ci_builds RETURNING id) SELECT * FROM d",
            "ci_builds",
            true,
        ),
        (
            "SELECT * FROM gitlab_partitions_dynamic.ci_builds_101",
            "gitlab_partitions_dynamic.ci_builds_101",
            false,
        ),
        ("SELECT * FROM public.ci_builds", "public.ci_builds", false),
        // ci_job_annotations resolves through its partitioned parent p_ci_job_annotations.
        (
            "SELECT * FROM ci_job_annotations_100",
            "ci_job_annotations_100",
            false,
        ),
    ] {
        assert_eq!(
            refused(&guard, sql),
            (table.to_string(), ci.clone(), written),
            "{sql}"
        );
    }
}

#[test]
fn writes_must_be_in_the_tag_shared_or_internal() {
    let (_dir, dict) = dictionary();
    // A connection serving both main and ci (before the split) running a gitlab_ci migration.
    let allowed = [
        "gitlab_main",
        "gitlab_ci",
        "gitlab_shared",
        "gitlab_internal",
    ]
    .map(String::from);
    let guard = Guard::new(dict, allowed.to_vec(), "gitlab_ci".into());
    guard
        .check("UPDATE ci_builds SET x = 1 FROM projects WHERE true")
        .unwrap();
    guard
        .check("INSERT INTO batched_background_migrations SELECT 1")
        .unwrap();
    let err = guard
        .check("UPDATE projects SET x = 1 FROM ci_builds WHERE true")
        .unwrap_err();
    let message = err.to_string();
    assert!(
        matches!(&err, Error::Guard(GuardError::CrossDatabaseAccess { table, table_schema: Some(s), written: true, .. })
            if table == "projects" && s == "gitlab_main"),
        "{err:?}"
    );
    assert!(message.contains("\"projects\""), "{message}");
    assert!(message.contains("gitlab_main"), "{message}");
    assert!(message.contains("restricted to gitlab_ci"), "{message}");
    assert!(message.contains("statement not sent"), "{message}");
    assert_eq!(err.kind(), "CrossDatabaseAccess");
}

#[test]
fn unknown_tables_are_refused_with_their_own_message() {
    let (_dir, guard) = main_guard();
    let err = guard.check("SELECT * FROM no_such_table").unwrap_err();
    assert!(matches!(
        &err,
        Error::Guard(GuardError::CrossDatabaseAccess {
            table_schema: None,
            ..
        })
    ));
    let message = err.to_string();
    assert!(message.contains("\"no_such_table\""), "{message}");
    assert!(
        message.contains("no gitlab_schema in the dictionary"),
        "{message}"
    );
    assert!(
        message.contains("gitlab_main, gitlab_shared, gitlab_internal"),
        "{message}"
    );
}

#[test]
fn the_refusal_message_names_the_table_both_schemas_and_the_statement() {
    let (_dir, guard) = main_guard();
    let long = format!(
        "SELECT * FROM ci_builds WHERE id IN ({})",
        "1, ".repeat(200) + "1"
    );
    let message = guard.check(&long).unwrap_err().to_string();
    assert!(
        message.contains("reads table \"ci_builds\" of gitlab_ci"),
        "{message}"
    );
    assert!(
        message.contains("serves only gitlab_main, gitlab_shared, gitlab_internal"),
        "{message}"
    );
    assert!(message.contains("statement not sent"), "{message}");
    assert!(
        message.contains("statement: SELECT * FROM ci_builds WHERE id IN (1, 1,"),
        "{message}"
    );
    assert!(message.ends_with("..."), "{message}");
    assert!(message.len() < 600, "{}", message.len());
}

#[test]
fn unparsable_statements_are_refused_with_the_parsers_message() {
    let (_dir, guard) = main_guard();
    let err = guard.check("SELEC * FROM projects").unwrap_err();
    assert!(
        matches!(&err, Error::Guard(GuardError::GuardParse { .. })),
        "{err:?}"
    );
    assert_eq!(err.kind(), "GuardParse");
    let message = err.to_string();
    assert!(
        message.contains("syntax error at or near \"SELEC\""),
        "{message}"
    );
    assert!(message.contains("SELEC * FROM projects"), "{message}");
    // Cached too, with the same verdict.
    assert!(matches!(
        guard.check("SELEC * FROM projects"),
        Err(Error::Guard(GuardError::GuardParse { .. }))
    ));
    assert!(matches!(
        guard.check("SELECT 1\0"),
        Err(Error::Guard(GuardError::GuardParse { .. }))
    ));
}

#[test]
fn the_cache_returns_the_same_verdict_and_stays_bounded() {
    let (_dir, guard) = main_guard();
    assert_eq!(guard.cache_len(), 0);
    guard.check("SELECT * FROM projects").unwrap();
    let first = guard
        .check("SELECT * FROM ci_builds")
        .unwrap_err()
        .to_string();
    assert_eq!(guard.cache_len(), 2);
    guard.check("SELECT * FROM projects").unwrap();
    assert_eq!(
        guard
            .check("SELECT * FROM ci_builds")
            .unwrap_err()
            .to_string(),
        first
    );
    assert_eq!(guard.cache_len(), 2);
    assert_eq!(
        guard.tables("SELECT * FROM ci_builds").unwrap().read,
        vec!["ci_builds".to_string()]
    );

    for i in 0..guard::CACHE_ENTRIES + 5 {
        guard.check(&format!("SELECT {i} FROM projects")).unwrap();
    }
    assert!(guard.cache_len() <= guard::CACHE_ENTRIES);
    assert_eq!(
        guard
            .check("SELECT * FROM ci_builds")
            .unwrap_err()
            .to_string(),
        first
    );
}

#[test]
fn guards_share_one_dictionary_across_threads() {
    let (_dir, guard) = main_guard();
    let guard = Arc::new(guard);
    let handles: Vec<_> = (0..4)
        .map(|t| {
            let guard = Arc::clone(&guard);
            std::thread::spawn(move || {
                for i in 0..200 {
                    guard
                        .check(&format!("SELECT {} FROM projects", i % 50 + t))
                        .unwrap();
                    assert!(guard.check("SELECT * FROM ci_builds").is_err());
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
}

#[test]
fn a_guard_can_borrow_its_dictionary() {
    let (_dir, dict) = dictionary();
    let guard = Guard::new(&*dict, vec!["gitlab_ci".into()], "gitlab_ci".into());
    guard.check("SELECT * FROM ci_builds").unwrap();
    assert!(guard.check("SELECT * FROM projects").is_err());
}

#[test]
fn ddl_targets_are_written_and_hidden_relations_are_still_read() {
    assert_tables(
        "DROP TABLE IF EXISTS issues, public.users",
        &[],
        &["issues", "public.users"],
    );
    assert_tables("ALTER TABLE issues ADD COLUMN x int", &[], &["issues"]);
    assert_tables("CREATE INDEX i ON issues (id)", &[], &["issues"]);
    assert_tables("LOCK TABLE issues IN SHARE MODE", &["issues"], &[]);
    // REFERENCES names a table inside a node kind the walk does not follow; the net still finds it.
    assert_tables(
        "ALTER TABLE issues ADD CONSTRAINT fk FOREIGN KEY (project_id) REFERENCES ci_builds (id)",
        &["ci_builds"],
        &["issues"],
    );
}

#[test]
fn the_refusal_keeps_error_small() {
    // clippy's result_large_err warns from 128 bytes on.
    assert!(
        std::mem::size_of::<Error>() < 128,
        "{}",
        std::mem::size_of::<Error>()
    );
}

mod batches_are_dml {
    use super::*;

    #[test]
    fn a_do_block_is_refused_unsent_naming_what_it_is() {
        let (_dir, guard) = main_guard();
        let err = guard
            .check("DO $$ BEGIN UPDATE ci_builds SET id = id; END $$")
            .unwrap_err();
        assert!(
            matches!(err, Error::Guard(GuardError::ForbiddenStatement { .. })),
            "{err}"
        );
        assert!(err.to_string().contains("this is a DO block"), "{err}");
    }

    #[test]
    fn changing_the_search_path_inside_a_batch_is_refused() {
        let (_dir, guard) = main_guard();
        for sql in [
            "SET search_path = shadow, public",
            "SELECT set_config('search_path', 'shadow', true)",
            "SET LOCAL schema_fence.bypass_lock_writes = on",
        ] {
            let err = guard.check(sql).unwrap_err();
            assert_eq!(err.kind(), "ForbiddenStatement", "{sql}");
        }
        guard.check("SET LOCAL statement_timeout = '5s'").unwrap();
    }

    #[test]
    fn a_name_in_another_postgresql_schema_is_not_the_public_table_of_that_name() {
        let (_dir, guard) = main_guard();
        guard.check("SELECT * FROM public.projects").unwrap();
        guard
            .check("SELECT * FROM gitlab_partitions_dynamic.projects_101")
            .unwrap();
        let err = guard.check("SELECT * FROM shadow.projects").unwrap_err();
        assert!(
            err.to_string()
                .contains("\"shadow.projects\", which has no gitlab_schema"),
            "{err}"
        );
    }
}
