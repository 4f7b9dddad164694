//! The guard's cache by shape (docs/architecture.md section 9): statements that differ only in their
//! literals share one verdict, which is the verdict a fresh guard gives each of them; a verdict
//! that reads a literal (`set_config`'s setting name) is never shared; both maps stay bounded.
//! On GitLab's own table map, as a `main` connection running a `gitlab_main` migration.

mod common;

use std::sync::Arc;

use schema_fence::error::GuardError;
use schema_fence::guard::{self, Guard};
use schema_fence::{Dictionary, Error};

fn main_guard(dictionary: &Arc<Dictionary>) -> Guard {
    let allowed = ["gitlab_main", "gitlab_shared", "gitlab_internal"].map(String::from);
    Guard::new(
        Arc::clone(dictionary),
        allowed.to_vec(),
        "gitlab_main".into(),
    )
}

fn gitlab_dictionary() -> Arc<Dictionary> {
    let flat = common::gitlab_fixtures().join("gitlab_schemas.yml");
    Arc::new(Dictionary::load(&[flat]).unwrap())
}

/// The verdict as a comparable string: "ok", or the error's message without the statement.
fn verdict(guard: &Guard, sql: &str) -> String {
    match guard.check(sql) {
        Ok(()) => "ok".to_string(),
        Err(Error::Guard(GuardError::CrossDatabaseAccess { table, written, .. })) => {
            format!("refused {table} written={written}")
        }
        Err(Error::Guard(GuardError::ForbiddenStatement { what, .. })) => {
            format!("forbidden {what}")
        }
        Err(other) => format!("{other:?}"),
    }
}

/// Statement templates: `{a}` and `{b}` take literals, of every kind the parser has.
const TEMPLATES: &[&str] = &[
    r#"SELECT "projects"."id" FROM "projects" WHERE "projects"."id" >= {a} ORDER BY "projects"."id" LIMIT {b}"#,
    r#"UPDATE "issues" SET "state_id" = {a} WHERE "issues"."id" BETWEEN {a} AND {b}"#,
    r#"UPDATE "ci_builds" SET "status" = {a} WHERE "ci_builds"."id" BETWEEN {a} AND {b}"#,
    "SELECT * FROM ci_pipelines WHERE id IN ({a}, {b})",
    "INSERT INTO loose_foreign_keys_deleted_records (fully_qualified_table_name, primary_key_value) \
     SELECT {a}, id FROM projects WHERE id < {b}",
    "SELECT {a}::regclass, nextval({b}) FROM projects",
    "WITH ci_builds AS (SELECT {a} AS id) SELECT * FROM ci_builds WHERE id = {b}",
    "SELECT set_config({a}, {b}, true)",
    "SELECT set_config({a}, {b}, true) FROM projects WHERE id = 1",
    "SELECT * FROM projects /* {a} */ WHERE id = {b} -- {a}\n",
    r#"SELECT "ci_builds".* FROM "ci_builds" WHERE "ci_builds"."id" = {a} AND "ci_builds"."name" = {b}"#,
];

/// Literals to put in the templates; the setting names among them matter to `set_config`.
const LITERALS: &[&str] = &[
    "1",
    "42",
    "-7",
    "1.5e3",
    "'ci_builds'",
    "'search_path'",
    "'application_name'",
    "'role'",
    "E'schema_fence.stamp'",
    "$$search_path$$",
    "NULL",
    "true",
    "B'101'",
    "'public.projects'",
    "'it''s'",
    "U&'d\\0061t'",
    "'a\\'",
];

fn fill(template: &str, a: &str, b: &str) -> String {
    template.replace("{a}", a).replace("{b}", b)
}

#[test]
fn a_statement_gets_the_verdict_a_fresh_guard_gives_it_whatever_the_guard_saw_before() {
    let dictionary = gitlab_dictionary();
    let warm = main_guard(&dictionary);
    let mut seen = 0;
    // Every template with every pair of literals, through one guard in one order and then
    // the reverse: a shared verdict is right only when no literal can change it.
    let mut statements = Vec::new();
    for template in TEMPLATES {
        for a in LITERALS {
            for b in LITERALS {
                statements.push(fill(template, a, b));
            }
        }
    }
    for order in [false, true] {
        let list: Vec<&String> = if order {
            statements.iter().rev().collect()
        } else {
            statements.iter().collect()
        };
        for sql in list {
            let fresh = main_guard(&dictionary);
            assert_eq!(verdict(&warm, sql), verdict(&fresh, sql), "{sql}");
            seen += 1;
        }
    }
    assert_eq!(seen, 2 * TEMPLATES.len() * LITERALS.len() * LITERALS.len());
}

#[test]
fn statements_that_differ_only_in_literals_share_one_shape() {
    let dictionary = gitlab_dictionary();
    let guard = main_guard(&dictionary);
    for i in 0..100 {
        let sql = format!(
            r#"UPDATE "issues" SET "state_id" = {i} WHERE "issues"."id" BETWEEN {} AND {}"#,
            i * 100,
            i * 100 + 99
        );
        guard.check(&sql).unwrap();
        let refused = format!(r#"SELECT * FROM "ci_builds" WHERE "id" = {i}"#);
        assert_eq!(verdict(&guard, &refused), "refused ci_builds written=false");
    }
    assert_eq!(guard.cache_len(), 200, "each text is remembered");
    assert_eq!(guard.shapes_len(), 2, "one shape per statement kind");
}

#[test]
fn set_config_is_judged_by_the_setting_it_names_every_time() {
    let dictionary = gitlab_dictionary();
    let guard = main_guard(&dictionary);
    assert_eq!(
        verdict(&guard, "SELECT set_config('application_name', 'x', true)"),
        "ok"
    );
    assert_eq!(
        verdict(&guard, "SELECT set_config('search_path', 'x', true)"),
        "forbidden set_config of search_path"
    );
    assert_eq!(
        verdict(&guard, "SELECT set_config('application_name', 'y', true)"),
        "ok"
    );
    assert_eq!(guard.shapes_len(), 0, "nothing shared for set_config");
}

#[test]
fn the_refusal_of_a_shared_verdict_quotes_the_statement_it_refuses() {
    let dictionary = gitlab_dictionary();
    let guard = main_guard(&dictionary);
    guard
        .check("SELECT * FROM ci_builds WHERE id = 1")
        .unwrap_err();
    let message = guard
        .check("SELECT * FROM ci_builds WHERE id = 987654")
        .unwrap_err()
        .to_string();
    assert!(message.contains("id = 987654"), "{message}");
}

#[test]
fn unparsable_texts_are_never_given_a_shape() {
    let dictionary = gitlab_dictionary();
    let guard = main_guard(&dictionary);
    for sql in [
        "SELEC 1 FROM projects",
        "SELECT 1 FROM projects WHERE",
        "SELECT 1\0",
    ] {
        assert!(
            matches!(
                guard.check(sql),
                Err(Error::Guard(GuardError::GuardParse { .. }))
            ),
            "{sql}"
        );
    }
    assert_eq!(guard.shapes_len(), 0);
}

#[test]
fn both_maps_stay_bounded() {
    let dictionary = gitlab_dictionary();
    let guard = main_guard(&dictionary);
    // New shapes (a new column each) and new texts of one shape (a new literal each).
    for i in 0..guard::CACHE_ENTRIES + 50 {
        guard
            .check(&format!("SELECT c{i} FROM projects WHERE id = {i}"))
            .unwrap();
        assert!(guard.cache_len() <= guard::CACHE_ENTRIES);
        assert!(guard.shapes_len() <= guard::CACHE_ENTRIES);
    }
    assert!(guard.shapes_len() < 100, "the shapes map started again");
    assert_eq!(
        verdict(&guard, "SELECT * FROM ci_builds"),
        "refused ci_builds written=false"
    );
}
