//! The dictionary against GitLab's own data, every resolution rule, and every loading error.

mod common;

use std::collections::BTreeMap;

use common::*;
use schema_fence::error::{DictionaryError, YamlError};
use schema_fence::{Dictionary, Error, Rule};

fn flat_fixture() -> BTreeMap<String, String> {
    let text = std::fs::read_to_string(gitlab_fixtures().join("gitlab_schemas.yml")).unwrap();
    text.lines()
        .filter(|l| !l.starts_with('#') && l.contains(':'))
        .map(|l| {
            let (t, s) = l.split_once(": ").unwrap();
            (
                t.trim().to_string(),
                s.trim().trim_start_matches(':').to_string(),
            )
        })
        .collect()
}

fn small() -> (tempfile::TempDir, Dictionary) {
    let dir = tempfile::tempdir().unwrap();
    let flat = write(
        dir.path(),
        "gitlab_schemas.yml",
        "ci_builds: :gitlab_ci\np_ci_runner_machine_builds: :gitlab_ci\nprojects: :gitlab_main\n\
         loose_foreign_keys_deleted_records: :gitlab_shared\nschema_migrations: :gitlab_internal\n\
         analytics_2: :gitlab_ci\nanalytics: :gitlab_main\n",
    );
    let docs = dir.path().join("db/docs");
    write(
        &docs,
        "deleted_tables/old_ci_things.yml",
        "table_name: old_ci_things\ngitlab_schema: gitlab_ci\n",
    );
    write(
        &docs,
        "views/postgres_indexes.yml",
        "view_name: postgres_indexes\ngitlab_schema: gitlab_internal\n",
    );
    write(
        &docs,
        "batched_background_migrations/foo.yml",
        "migration_job_name: Foo\n",
    );
    write(
        &docs,
        "members.yml",
        "table_name: members\ngitlab_schema: gitlab_main_cell\n",
    );
    let dict = Dictionary::load(&[flat, docs]).unwrap();
    (dir, dict)
}

fn rule_of(dict: &Dictionary, name: &str) -> Option<(String, Rule)> {
    dict.resolve(name)
        .map(|r| (dict.schema_name(r.schema).to_string(), r.rule))
}

#[test]
fn every_table_of_gitlabs_flat_map_resolves_to_its_listed_schema() {
    let expected = flat_fixture();
    assert_eq!(expected.len(), 572);
    let dict = Dictionary::load(&[gitlab_fixtures().join("gitlab_schemas.yml")]).unwrap();
    assert_eq!(dict.len(), 572);
    for (table, schema) in &expected {
        assert_eq!(dict.table_schema(table), Some(schema.as_str()), "{table}");
    }
    assert_eq!(
        dict.schemas(),
        vec![
            "gitlab_ci",
            "gitlab_internal",
            "gitlab_main",
            "gitlab_shared"
        ]
    );
    assert_eq!(dict.tables("gitlab_ci").len(), 52);
}

#[test]
fn every_db_docs_pair_resolves_when_written_as_a_db_docs_directory() {
    let pairs = db_docs_pairs();
    assert_eq!(pairs.len(), 87);
    let dir = tempfile::tempdir().unwrap();
    let docs = write_db_docs(dir.path(), &pairs);
    let dict = Dictionary::load(&[docs]).unwrap();
    for (table, schema) in &pairs {
        assert_eq!(dict.table_schema(table), Some(schema.as_str()), "{table}");
    }
}

#[test]
fn rule_1_and_2_prefixes_are_split_and_catalogs_are_internal() {
    let (_dir, dict) = small();
    let internal = Some(("gitlab_internal".to_string(), Rule::Internal));
    assert_eq!(rule_of(&dict, "pg_class"), internal);
    assert_eq!(rule_of(&dict, "information_schema.columns"), internal);
    assert_eq!(rule_of(&dict, "pg_catalog.pg_index"), internal);
    assert_eq!(
        rule_of(&dict, "public.projects"),
        Some(("gitlab_main".into(), Rule::Exact))
    );
}

#[test]
fn rule_3_exact_match_wins_over_stripping_a_suffix() {
    let (_dir, dict) = small();
    // GitLab stripped first and read `analytics_2` as `analytics`: exact match first is the fix.
    assert_eq!(
        rule_of(&dict, "analytics_2"),
        Some(("gitlab_ci".into(), Rule::Exact))
    );
    assert_eq!(
        rule_of(&dict, "postgres_indexes"),
        Some(("gitlab_internal".into(), Rule::Exact))
    );
}

#[test]
fn rule_4_partition_suffixes_are_stripped() {
    let (_dir, dict) = small();
    assert_eq!(
        rule_of(
            &dict,
            "gitlab_partitions_dynamic.loose_foreign_keys_deleted_records_12"
        ),
        Some(("gitlab_shared".into(), Rule::PartitionSuffix))
    );
    assert_eq!(
        rule_of(&dict, "analytics_3"),
        Some(("gitlab_main".into(), Rule::PartitionSuffix))
    );
}

#[test]
fn rule_5_ci_tables_find_their_partitioned_parent() {
    let (_dir, dict) = small();
    let parent = Some(("gitlab_ci".to_string(), Rule::PartitionedParent));
    assert_eq!(rule_of(&dict, "ci_runner_machine_builds"), parent);
    assert_eq!(
        rule_of(
            &dict,
            "gitlab_partitions_dynamic.ci_runner_machine_builds_100"
        ),
        parent
    );
}

#[test]
fn rule_6_deleted_tables_still_resolve() {
    let (_dir, dict) = small();
    assert_eq!(
        rule_of(&dict, "old_ci_things"),
        Some(("gitlab_ci".into(), Rule::Deleted))
    );
    assert!(!dict.tables("gitlab_ci").contains(&"old_ci_things"));
}

#[test]
fn rule_7_test_prefixes() {
    let (_dir, dict) = small();
    assert_eq!(
        rule_of(&dict, "_test_gitlab_ci_some_table"),
        Some(("gitlab_ci".into(), Rule::TestSchemaPrefix))
    );
    // The longest known schema wins.
    assert_eq!(
        rule_of(&dict, "_test_gitlab_main_cell_table"),
        Some(("gitlab_main_cell".into(), Rule::TestSchemaPrefix))
    );
    assert_eq!(
        rule_of(&dict, "_test_my_table"),
        Some(("gitlab_shared".into(), Rule::TestShared))
    );
}

#[test]
fn rule_8_unknown_tables_are_none_or_an_error_naming_the_sources() {
    let (_dir, dict) = small();
    assert_eq!(dict.table_schema("no_such_table"), None);
    let err = dict.table_schema_strict("no_such_table").unwrap_err();
    assert!(matches!(
        err,
        Error::Dictionary(DictionaryError::UnknownTable { .. })
    ));
    let message = err.to_string();
    assert!(message.contains("\"no_such_table\""), "{message}");
    assert!(
        message.contains("gitlab_schemas.yml") && message.contains("db/docs"),
        "{message}"
    );
}

#[test]
fn malformed_yaml_names_the_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let flat = write(
        dir.path(),
        "map.yml",
        "projects: :gitlab_main\nci_builds: [unclosed\n",
    );
    let err = Dictionary::load(&[&flat]).unwrap_err();
    match &err {
        Error::Yaml(YamlError::MalformedYaml { path, line, .. }) => {
            assert_eq!(path, &flat);
            assert!(*line >= 2, "line {line}");
        }
        other => panic!("unexpected {other:?}"),
    }
    assert!(err.to_string().starts_with(&format!("{}:", flat.display())));
}

#[test]
fn two_sources_giving_a_table_two_schemas_name_both_files() {
    let dir = tempfile::tempdir().unwrap();
    let flat = write(dir.path(), "map.yml", "ci_builds: :gitlab_ci\n");
    let docs = dir.path().join("db/docs");
    let file = write(
        &docs,
        "ci_builds.yml",
        "table_name: ci_builds\ngitlab_schema: gitlab_main\n",
    );
    let err = Dictionary::load(&[&flat, &docs]).unwrap_err();
    let message = err.to_string();
    assert!(matches!(
        err,
        Error::Dictionary(DictionaryError::ConflictingSchema { .. })
    ));
    assert!(message.contains(&flat.display().to_string()), "{message}");
    assert!(message.contains(&file.display().to_string()), "{message}");
    // The same schema twice is no conflict.
    write(
        &docs,
        "ci_builds.yml",
        "table_name: ci_builds\ngitlab_schema: gitlab_ci\n",
    );
    assert!(Dictionary::load(&[&flat, &docs]).is_ok());
}

#[test]
fn a_table_naming_an_undefined_schema_is_an_error_when_definitions_are_given() {
    let dir = tempfile::tempdir().unwrap();
    let defs = dir.path().join("db/gitlab_schemas");
    write(
        &defs,
        "gitlab_main.yaml",
        "name: gitlab_main\ndescription: main\nallow_cross_joins: []\n",
    );
    let docs = dir.path().join("db/docs");
    write(
        &docs,
        "projects.yml",
        "table_name: projects\ngitlab_schema: gitlab_main\n",
    );
    let bad = write(
        &docs,
        "widgets.yml",
        "table_name: widgets\ngitlab_schema: gitlab_mian\n",
    );
    let err = Dictionary::load(&[&docs, &defs]).unwrap_err();
    let message = err.to_string();
    assert!(
        matches!(
            err,
            Error::Dictionary(DictionaryError::UndefinedSchema { .. })
        ),
        "{message}"
    );
    assert!(message.contains("gitlab_mian") && message.contains(&bad.display().to_string()));
    std::fs::remove_file(bad).unwrap();
    assert!(Dictionary::load(&[&docs, &defs]).is_ok());
}

#[test]
fn a_db_docs_file_without_its_keys_is_an_error_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let docs = dir.path().join("db/docs");
    write(
        &docs,
        "projects.yml",
        "table_name: projects\ngitlab_schema: gitlab_main\n",
    );
    write(
        &docs,
        "widgets.yml",
        "table_name: widgets\ndescription: no schema\n",
    );
    let err = Dictionary::load(&[&docs]).unwrap_err();
    assert!(
        matches!(
            err,
            Error::Yaml(YamlError::MissingKey {
                key: "gitlab_schema",
                ..
            })
        ),
        "{err}"
    );
    write(
        &docs,
        "widgets.yml",
        "gitlab_schema: gitlab_main\ndescription: no name\n",
    );
    write(
        &docs,
        "views/v.yml",
        "view_name: v\ngitlab_schema: gitlab_main\n",
    );
    let err = Dictionary::load(&[&docs]).unwrap_err();
    assert!(
        matches!(
            err,
            Error::Yaml(YamlError::MissingKey {
                key: "table_name",
                ..
            })
        ),
        "{err}"
    );
    assert!(err.to_string().contains("widgets.yml"));
}

#[test]
fn a_database_connections_directory_is_refused_with_a_pointer_to_topology() {
    let err = Dictionary::load(&[gitlab_fixtures().join("database_connections")]).unwrap_err();
    assert!(matches!(
        err,
        Error::Dictionary(DictionaryError::UnrecognizedSource { .. })
    ));
    assert!(err.to_string().contains("Topology"), "{err}");
}

mod bad_entries {
    use super::*;

    #[test]
    fn an_empty_blank_or_null_schema_is_refused_with_path_and_line() {
        let dir = tempfile::tempdir().unwrap();
        for (value, says) in [
            ("", "an empty gitlab_schema"),
            (" ~", "gitlab_schema ~ (YAML's null)"),
            (" ' '", "a blank gitlab_schema (\" \")"),
            (" ''", "an empty gitlab_schema"),
            (
                " gitlab main",
                "gitlab_schema \"gitlab main\", which is not a schema name",
            ),
        ] {
            let path = common::write(
                dir.path(),
                "gitlab_schemas.yml",
                &format!("ci_builds: :gitlab_ci\nprojects:{value}\n"),
            );
            let err = schema_fence::Dictionary::load(&[&path]).unwrap_err();
            let message = err.to_string();
            assert_eq!(err.kind(), "InvalidEntry", "{message}");
            assert!(
                message.starts_with(&format!("{}:2: table \"projects\": {says}", path.display())),
                "{value:?}: {message}"
            );
        }
    }

    #[test]
    fn a_db_docs_file_with_a_blank_schema_names_its_line() {
        let dir = tempfile::tempdir().unwrap();
        let docs = dir.path().join("db/docs");
        common::write(
            &docs,
            "projects.yml",
            "---\ntable_name: projects\ngitlab_schema: ''\n",
        );
        let err = schema_fence::Dictionary::load(&[&docs]).unwrap_err();
        assert!(
            err.to_string()
                .contains("projects.yml:3: table \"projects\": an empty gitlab_schema"),
            "{err}"
        );
    }

    #[test]
    fn a_300_000_line_flat_map_loads_in_linear_time() {
        let dir = tempfile::tempdir().unwrap();
        let text: String = (0..300_000)
            .map(|i| format!("table_{i}: :gitlab_main\n"))
            .collect();
        let path = common::write(dir.path(), "big.yml", &text);
        let started = std::time::Instant::now();
        let dictionary = schema_fence::Dictionary::load(&[&path]).unwrap();
        assert_eq!(dictionary.len(), 300_000);
        // Debug builds on a shared machine: far below the minutes a quadratic lookup takes.
        assert!(
            started.elapsed() < std::time::Duration::from_secs(30),
            "{:?}",
            started.elapsed()
        );
    }
}
