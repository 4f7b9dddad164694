//! A batch is DML (docs/architecture.md section 9): statements that change what later statements mean are
//! refused whatever tables they name. DO blocks and DDL of functions, procedures, triggers,
//! rules and views (code the guard cannot see into), and SET, RESET and `set_config` of the
//! settings that change how names and strings are read or who runs them.
//!
//! The tree is visited through its derived `serde::Serialize` (as JSON), so every node kind
//! PostgreSQL has is seen, however deeply nested.

use pg_query::protobuf::{node::Node as N, ObjectType, ParseResult};
use serde_json::Value;

/// Settings a batch may not change: `search_path` (which table a name is), `role` and
/// `session_authorization` (who runs it), `session_replication_role` (whether triggers, the
/// write locks among them, fire), `standard_conforming_strings` (how the parser and the server
/// read a string literal).
const PROTECTED: &[&str] = &[
    "search_path",
    "role",
    "session_authorization",
    "session_replication_role",
    "standard_conforming_strings",
];

/// `VariableSetStmt.kind` of `RESET ALL` (PostgreSQL's `VAR_RESET_ALL`, shifted by protobuf's 0).
const RESET_ALL: i64 = 6;

/// What the inspection of one statement found.
pub(crate) struct Inspection {
    /// What makes the statement forbidden in a batch, if anything.
    pub forbidden: Option<String>,
    /// Whether the verdict reads a literal's value (`set_config`'s setting name), so that the
    /// same statement with other literals may get another verdict: such a statement must not
    /// share a verdict with others of its shape.
    pub reads_literals: bool,
}

/// What makes the statement forbidden in a batch, if anything.
#[cfg(test)]
pub(crate) fn forbidden(sql: &str) -> Option<String> {
    inspect(&pg_query::parse(sql, 0).unwrap().protobuf, sql).forbidden
}

/// The statement's inspection: whether it is forbidden, and whether that depends on literals.
/// `sql` is the text `result` was parsed from.
pub(crate) fn inspect(result: &ParseResult, sql: &str) -> Inspection {
    // Every forbidden node but `set_config` is a statement of its own, which only a utility
    // statement can hold (`EXPLAIN EXECUTE`, `CREATE SCHEMA ... CREATE VIEW`), never a query:
    // queries that do not spell `set_config` (nor hide a name in a `U&` escape) need no walk of
    // the tree as JSON, most of a new statement's cost.
    if only_queries(result) && !may_name_set_config(sql) {
        return Inspection {
            forbidden: None,
            reads_literals: false,
        };
    }
    match serde_json::to_value(result) {
        Ok(tree) => Inspection {
            forbidden: find(&tree),
            reads_literals: calls_set_config(&tree),
        },
        Err(e) => Inspection {
            forbidden: Some(format!("a statement the guard cannot inspect ({e})")),
            reads_literals: true,
        },
    }
}

/// Whether every statement is a SELECT, INSERT, UPDATE or DELETE.
fn only_queries(result: &ParseResult) -> bool {
    result.stmts.iter().all(|raw| {
        matches!(
            raw.stmt.as_ref().and_then(|n| n.node.as_ref()),
            Some(N::SelectStmt(_) | N::InsertStmt(_) | N::UpdateStmt(_) | N::DeleteStmt(_))
        )
    })
}

/// Whether `sql` may call `set_config`: it spells the name (quoted or not, any case), or has a
/// Unicode escape, which could spell it otherwise.
fn may_name_set_config(sql: &str) -> bool {
    let lower = sql.to_ascii_lowercase();
    lower.contains("set_config") || lower.contains("u&")
}

fn calls_set_config(value: &Value) -> bool {
    match value {
        Value::Object(map) => map.iter().any(|(key, inner)| {
            (key == "FuncCall"
                && called(inner).is_some_and(|f| f.eq_ignore_ascii_case("set_config")))
                || calls_set_config(inner)
        }),
        Value::Array(items) => items.iter().any(calls_set_config),
        _ => false,
    }
}

fn called(n: &Value) -> Option<&str> {
    n["funcname"].as_array()?.last()?["node"]["String"]["sval"].as_str()
}

fn find(value: &Value) -> Option<String> {
    match value {
        Value::Object(map) => map
            .iter()
            .find_map(|(key, inner)| node(key, inner).or_else(|| find(inner))),
        Value::Array(items) => items.iter().find_map(find),
        _ => None,
    }
}

fn node(kind: &str, n: &Value) -> Option<String> {
    let what = match kind {
        "DoStmt" => "a DO block".to_string(),
        "CreateFunctionStmt" if n["is_procedure"] == Value::Bool(true) => {
            "CREATE PROCEDURE".to_string()
        }
        "CreateFunctionStmt" => "CREATE FUNCTION".to_string(),
        "AlterFunctionStmt" => "ALTER FUNCTION".to_string(),
        "CreateTrigStmt" => "CREATE TRIGGER".to_string(),
        "CreateEventTrigStmt" => "CREATE EVENT TRIGGER".to_string(),
        "RuleStmt" => "CREATE RULE".to_string(),
        "ViewStmt" => "CREATE VIEW".to_string(),
        "ExecuteStmt" => {
            "EXECUTE of a prepared statement, whose text the guard never saw".to_string()
        }
        "DropStmt" => return dropped(n),
        "VariableSetStmt" => return setting(n),
        "FuncCall" => return set_config(n),
        _ => return None,
    };
    Some(what)
}

fn dropped(n: &Value) -> Option<String> {
    let kind = n["remove_type"].as_i64()?;
    let name = [
        (ObjectType::ObjectFunction, "DROP FUNCTION"),
        (ObjectType::ObjectProcedure, "DROP PROCEDURE"),
        (ObjectType::ObjectRoutine, "DROP ROUTINE"),
        (ObjectType::ObjectTrigger, "DROP TRIGGER"),
        (ObjectType::ObjectRule, "DROP RULE"),
        (ObjectType::ObjectView, "DROP VIEW"),
        (ObjectType::ObjectMatview, "DROP MATERIALIZED VIEW"),
    ]
    .into_iter()
    .find(|(t, _)| *t as i64 == kind)?
    .1;
    Some(name.to_string())
}

fn protected(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    PROTECTED.contains(&name.as_str()) || name.starts_with("schema_fence.")
}

fn setting(n: &Value) -> Option<String> {
    if n["kind"].as_i64() == Some(RESET_ALL) {
        return Some("RESET ALL (it resets search_path and role too)".to_string());
    }
    let name = n["name"].as_str()?;
    protected(name).then(|| format!("SET or RESET of {name}"))
}

fn set_config(n: &Value) -> Option<String> {
    if !called(n)?.eq_ignore_ascii_case("set_config") {
        return None;
    }
    let first = &n["args"][0]["node"]["AConst"]["val"]["Sval"]["sval"];
    match first.as_str() {
        Some(name) if !protected(name) => None,
        Some(name) => Some(format!("set_config of {name}")),
        None => Some("set_config of a setting named at run time".to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn why(sql: &str) -> Option<String> {
        forbidden(sql)
    }

    #[test]
    fn refuses_code_the_guard_cannot_see_into() {
        assert_eq!(
            why("DO $$ BEGIN UPDATE projects SET x = 1; END $$").as_deref(),
            Some("a DO block")
        );
        assert_eq!(
            why("CREATE OR REPLACE FUNCTION f() RETURNS int LANGUAGE sql AS 'select 1'").as_deref(),
            Some("CREATE FUNCTION")
        );
        assert_eq!(
            why("CREATE PROCEDURE p() LANGUAGE sql AS 'select 1'").as_deref(),
            Some("CREATE PROCEDURE")
        );
        assert_eq!(
            why("CREATE TRIGGER t BEFORE UPDATE ON ci_builds FOR EACH ROW EXECUTE FUNCTION f()")
                .as_deref(),
            Some("CREATE TRIGGER")
        );
        assert_eq!(
            why("CREATE RULE r AS ON UPDATE TO ci_builds DO INSTEAD NOTHING").as_deref(),
            Some("CREATE RULE")
        );
        assert_eq!(
            why("CREATE VIEW projects AS SELECT * FROM ci_builds").as_deref(),
            Some("CREATE VIEW")
        );
        assert_eq!(
            why("DROP TRIGGER t ON ci_builds").as_deref(),
            Some("DROP TRIGGER")
        );
        assert!(why("EXECUTE prepared_before(1, 2)")
            .unwrap()
            .starts_with("EXECUTE"));
    }

    #[test]
    fn refuses_changing_how_names_strings_and_roles_are_read() {
        for sql in [
            "SET search_path = shadow, public",
            "SET LOCAL search_path TO shadow",
            "SET SCHEMA 'shadow'",
            "RESET search_path",
            "SET ROLE other",
            "SET SESSION AUTHORIZATION other",
            "SET session_replication_role = replica",
            "SET standard_conforming_strings = off",
            "SET LOCAL schema_fence.bypass_lock_writes = on",
            "SET \"Schema_Fence.Stamp\" = '1'",
            "RESET ALL",
            "SELECT set_config('search_path', 'shadow', true)",
            "SELECT pg_catalog.set_config('schema_fence.stamp', txid_current()::text, true)",
            "UPDATE ci_builds SET done = 1 WHERE id = (SELECT 1 FROM (SELECT set_config('role', 'x', true)) s)",
            "SELECT set_config(name, 'x', true) FROM settings",
            "SELECT SET_CONFIG('search_path', 'shadow', true)",
            r#"SELECT "set_config"('search_path', 'shadow', true)"#,
            r#"SELECT U&"\0073et_config"('search_path', 'shadow', true)"#,
            "WITH s AS (SELECT set_config('role', 'x', true)) DELETE FROM ci_builds WHERE id IN (SELECT 1 FROM s)",
            "EXPLAIN EXECUTE p",
            "CREATE SCHEMA s CREATE VIEW v AS SELECT 1",
        ] {
            assert!(why(sql).is_some(), "{sql}");
        }
    }

    #[test]
    fn lets_dml_and_other_settings_through() {
        for sql in [
            "UPDATE ci_builds SET done = done + 1 WHERE id BETWEEN 1 AND 10",
            "SET LOCAL statement_timeout = '5s'",
            "SELECT set_config('application_name', 'x', true)",
            "SELECT 'search_path' AS s",
            "CREATE INDEX CONCURRENTLY i ON ci_builds (id)",
        ] {
            assert_eq!(why(sql), None, "{sql}");
        }
    }
}
