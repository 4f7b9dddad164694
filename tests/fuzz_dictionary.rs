//! Property tests: resolution never panics and is deterministic for any name; loading any
//! text as a flat map, a db/docs directory or a topology never panics, and when it succeeds
//! every written table resolves to its schema.
//!
//! `PROPTEST_CASES` sets the cases per property (default 2,000). Each property prints how many
//! inputs it ran, and the running total, so a run can report "N inputs ran".

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;

use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use schema_fence::error::DictionaryError;
use schema_fence::{Dictionary, Error, Topology};
use serde::Deserialize;

const DEFAULT_CASES: u32 = 2_000;

static TOTAL: AtomicUsize = AtomicUsize::new(0);

fn cases() -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(DEFAULT_CASES)
}

/// Runs `test` on `cases()` inputs of `strategy`, then prints how many inputs ran and how many
/// of them `test` found `accepted` (resolved, loaded), so a run shows both sides were reached.
fn fuzz<S: Strategy>(
    name: &str,
    accepted: &str,
    strategy: S,
    test: impl Fn(S::Value) -> Result<bool, TestCaseError>,
) where
    S::Value: std::fmt::Debug,
{
    let config = Config {
        cases: cases(),
        failure_persistence: None,
        ..Config::default()
    };
    let ran = AtomicUsize::new(0);
    let yes = AtomicUsize::new(0);
    let result = TestRunner::new(config).run(&strategy, |value| {
        ran.fetch_add(1, Ordering::Relaxed);
        if test(value)? {
            yes.fetch_add(1, Ordering::Relaxed);
        }
        Ok(())
    });
    let (ran, yes) = (ran.into_inner(), yes.into_inner());
    let total = TOTAL.fetch_add(ran, Ordering::Relaxed) + ran;
    eprintln!("fuzz_dictionary::{name}: {ran} inputs ran, {yes} {accepted} (running total {total} inputs)");
    if let Err(e) = result {
        panic!("{name}: {e}");
    }
}

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/fixtures/gitlab")
}

fn write(dir: &Path, relative: &str, text: impl AsRef<[u8]>) -> PathBuf {
    let path = dir.join(relative);
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(&path, text).unwrap();
    path
}

/// GitLab's 572-table flat map, plus `p_ci`_* parents, deleted tables and views.
fn dictionary() -> &'static Dictionary {
    static DICT: OnceLock<Dictionary> = OnceLock::new();
    DICT.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let docs = dir.path().join("db/docs");
        for (relative, key, name, schema) in [
            (
                "p_ci_job_annotations.yml",
                "table_name",
                "p_ci_job_annotations",
                "gitlab_ci",
            ),
            (
                "p_ci_build_tags.yml",
                "table_name",
                "p_ci_build_tags",
                "gitlab_ci",
            ),
            (
                "views/postgres_sequences.yml",
                "view_name",
                "postgres_sequences",
                "gitlab_shared",
            ),
            (
                "deleted_tables/ci_build_trace_sections.yml",
                "table_name",
                "ci_build_trace_sections",
                "gitlab_ci",
            ),
            (
                "deleted_views/old_view.yml",
                "view_name",
                "old_view",
                "gitlab_main",
            ),
        ] {
            write(
                &docs,
                relative,
                format!("{key}: {name}\ngitlab_schema: {schema}\n"),
            );
        }
        let dict = Dictionary::load(&[fixtures().join("gitlab_schemas.yml"), docs]).unwrap();
        drop(dir);
        dict
    })
}

fn flat_tables() -> &'static Vec<String> {
    static TABLES: OnceLock<Vec<String>> = OnceLock::new();
    TABLES.get_or_init(|| {
        fs::read_to_string(fixtures().join("gitlab_schemas.yml"))
            .unwrap()
            .lines()
            .filter_map(|l| l.split_once(':').map(|(t, _)| t.to_string()))
            .filter(|t| !t.starts_with('#'))
            .collect()
    })
}

// ---------------------------------------------------------------------------------------------
// (a) names

fn name() -> impl Strategy<Value = String> {
    let pg_schema = prop::sample::select(vec![
        "",
        "",
        "",
        "public.",
        "gitlab_partitions_dynamic.",
        "gitlab_partitions_static.",
        "pg_catalog.",
        "information_schema.",
        ".",
        "a.b.",
        "pg_",
        "é.",
    ]);
    let prefix = prop::sample::select(vec![
        "",
        "",
        "p_",
        "ci_",
        "p_ci_",
        "_test_",
        "_test_gitlab_",
        "_test_gitlab_main_",
        "_test_gitlab_main_cell_",
        "_test_gitlab_ci_",
        "pg_",
        "_",
        "ci",
    ]);
    let core = prop_oneof![
        3 => prop::sample::select(flat_tables().clone()),
        1 => "[a-z_0-9.]{0,40}",
        1 => any::<String>(),
        1 => prop::sample::select(vec![
            "job_annotations".to_string(), "build_tags".to_string(),
            "build_trace_sections".to_string(), "postgres_sequences".to_string(),
            "old_view".to_string(), String::new(),
        ]),
    ];
    let suffix = prop::sample::select(vec![
        "",
        "",
        "_1",
        "_101",
        "_202301",
        "_",
        "__1",
        "1",
        "_00000000000000000000000000000001",
        "_1_2",
        "_\u{0661}",
        ".x",
        "_é",
    ]);
    prop_oneof![
        8 => (pg_schema, prefix, core, suffix).prop_map(|(s, p, c, x)| format!("{s}{p}{c}{x}")),
        1 => any::<String>(),
        // Around the 128-byte buffer of the p_ci_* lookup, and far beyond it.
        1 => (120usize..140, prop::sample::select(vec!["a", "é", "_", "9"]), any::<bool>())
            .prop_map(|(n, c, digits)| {
                let mut s = String::from("ci_");
                while s.len() < n {
                    s.push_str(c);
                }
                if digits {
                    s.push_str("_12");
                }
                s
            }),
        1 => (1usize..20_000, "[a-z_0-9]{1,3}").prop_map(|(n, unit)| unit.repeat(n / unit.len())),
    ]
}

#[test]
fn any_name_resolves_without_panic_and_the_same_way_twice() {
    let dict = dictionary();
    fuzz("names", "resolved", name(), |name| {
        let first = dict.resolve(&name);
        prop_assert_eq!(first, dict.resolve(&name));
        let schema = dict.table_schema(&name);
        prop_assert_eq!(schema, first.map(|r| dict.schema_name(r.schema)));
        match dict.table_schema_strict(&name) {
            Ok(s) => prop_assert_eq!(Some(s), schema),
            Err(Error::Dictionary(DictionaryError::UnknownTable { table, sources })) => {
                prop_assert!(schema.is_none());
                prop_assert_eq!(&table, &name);
                prop_assert_eq!(sources.len(), 2);
            }
            Err(other) => prop_assert!(false, "unexpected error {other}"),
        }
        Ok(schema.is_some())
    });
}

#[test]
fn every_fixture_table_resolves_the_same_in_every_form() {
    let dict = dictionary();
    let strategy = (
        prop::sample::select(flat_tables().clone()),
        prop::sample::select(vec![
            "public.",
            "gitlab_partitions_dynamic.",
            "gitlab_partitions_static.",
        ]),
        1u64..u64::MAX,
    );
    fuzz(
        "fixture_tables",
        "partition names resolved",
        strategy,
        |(table, pg_schema, partition)| {
            let schema = dict.table_schema(&table);
            prop_assert!(schema.is_some(), "{} does not resolve", table);
            prop_assert_eq!(dict.table_schema(&format!("{pg_schema}{table}")), schema);
            // Another PostgreSQL schema's relation of that name is not the table.
            prop_assert_eq!(dict.table_schema(&format!("shadow.{table}")), None);
            let partition_name = format!("{table}_{partition}");
            if dict.resolve(&partition_name).map(|r| r.rule) == Some(schema_fence::Rule::Exact) {
                return Ok(false);
            }
            prop_assert_eq!(dict.table_schema(&partition_name), schema);
            Ok(true)
        },
    );
}

// ---------------------------------------------------------------------------------------------
// (b) dictionary sources

const KEYS: &[&str] = &[
    "table_name",
    "table_name",
    "gitlab_schema",
    "gitlab_schema",
    "view_name",
    "name",
    "gitlab_schemas",
    "classes",
    "description",
    "milestone",
    "x",
];

/// A YAML value of a random type, as text at `indent`.
fn yaml_value() -> impl Strategy<Value = String> {
    prop_oneof![
        6 => "[a-z_][a-z0-9_]{0,20}",
        2 => prop::sample::select(vec![
            "gitlab_main", "gitlab_ci", ":gitlab_main", "gitlab_shared", "gitlab_main_cell",
            "gitlab_sec", "gitlab_internal",
        ]).prop_map(str::to_string),
        1 => prop::sample::select(vec![
            "", "~", "null", "true", "123", "1.5", "-7", ".inf", "''", "'a b'", "\"x\\\"y\"",
            "\"\\u00e9\"", "[a, b]", "{a: b}", "[]", "{}", "&a x", "*a", "!!str x", "!foo x", "|",
            ">-", "'", "\"", "- x", "a: b", "é", "a\tb", "x # c", "[", "{", "%x", "@x",
        ]).prop_map(str::to_string),
        1 => any::<String>(),
    ]
}

/// A YAML document: mostly a mapping with some of the keys a loader looks for, values of
/// random types, nested sequences and mappings, block scalars; sometimes random bytes.
fn yaml_text() -> impl Strategy<Value = Vec<u8>> {
    let entry = (
        prop::sample::select(KEYS.to_vec()),
        yaml_value(),
        0usize..6,
        prop::collection::vec(yaml_value(), 0..3),
    )
        .prop_map(|(key, value, shape, items)| match shape {
            0..=2 => format!("{key}: {value}\n"),
            3 => {
                let lines: String = items.iter().map(|i| format!("- {i}\n")).collect();
                format!("{key}:\n{lines}")
            }
            4 => {
                let lines: String = items
                    .iter()
                    .map(|i| format!("  k{}: {i}\n", i.len()))
                    .collect();
                format!("{key}:\n{lines}")
            }
            _ => {
                let lines: String = items.iter().map(|i| format!("  {i}\n")).collect();
                format!("{key}: |\n{lines}")
            }
        });
    prop_oneof![
        8 => (any::<bool>(), prop::collection::vec(entry, 0..8)).prop_map(|(head, entries)| {
            let mut text = if head { "---\n".to_string() } else { String::new() };
            text.extend(entries);
            text.into_bytes()
        }),
        1 => prop::collection::vec(any::<u8>(), 0..200),
        1 => (prop::collection::vec(any::<u8>(), 0..40), "table_name: [a-z]{1,8}\ngitlab_schema: gitlab_[a-z]{1,5}\n")
            .prop_map(|(junk, doc)| {
                let mut text = doc.into_bytes();
                let at = junk.len() % (text.len() + 1);
                text.splice(at..at, junk);
                text
            }),
    ]
}

/// A flat map text: `table: :schema` lines, values of random types, sometimes garbage.
fn flat_text() -> impl Strategy<Value = Vec<u8>> {
    let line = (
        prop_oneof![4 => "[a-z_][a-z0-9_]{0,12}", 1 => any::<String>().prop_map(|s| s.replace('\n', ""))],
        yaml_value(),
    )
        .prop_map(|(table, schema)| format!("{table}: {schema}\n"));
    prop_oneof![
        8 => prop::collection::vec(line, 0..12).prop_map(|lines| lines.concat().into_bytes()),
        2 => yaml_text(),
    ]
}

/// What the loader must read from one db/docs file, parsed independently with `serde_yaml`.
#[derive(Deserialize)]
struct DocsKeys {
    table_name: Option<String>,
    view_name: Option<String>,
    gitlab_schema: Option<String>,
}

/// Whether a successful load must resolve `name` to its schema by the exact rule: names with
/// a `.` are split as `schema.table`, and `pg_*` names are catalogs.
fn resolvable(name: &str) -> bool {
    !name.contains('.') && !name.starts_with("pg_")
}

#[test]
fn any_flat_file_loads_or_fails_cleanly() {
    fuzz("flat_files", "loaded", flat_text(), |text| {
        let dir = tempfile::tempdir().unwrap();
        let path = write(dir.path(), "gitlab_schemas.yml", &text);
        let Ok(dict) = Dictionary::load(&[&path]) else {
            return Ok(false);
        };
        let text = String::from_utf8(text).expect("a loaded file is UTF-8");
        let pairs: Option<BTreeMap<String, String>> =
            serde_yaml::from_str(&text).expect("a loaded flat file is a map of strings");
        for (table, schema) in pairs.unwrap_or_default() {
            if resolvable(&table) {
                let schema = schema.strip_prefix(':').unwrap_or(&schema);
                prop_assert_eq!(dict.table_schema(&table), Some(schema), "table {:?}", table);
            }
        }
        Ok(true)
    });
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Place {
    Tables,
    Views,
    DeletedTables,
    DeletedViews,
    Migrations,
}

impl Place {
    fn dir(self) -> &'static str {
        match self {
            Place::Tables => "",
            Place::Views => "views/",
            Place::DeletedTables => "deleted_tables/",
            Place::DeletedViews => "deleted_views/",
            Place::Migrations => "batched_background_migrations/",
        }
    }
}

/// A value that is valid YAML more often than not, for the keys a loader ignores.
fn tame_value() -> impl Strategy<Value = String> {
    prop_oneof![
        8 => "[A-Za-z][A-Za-z0-9_ :/.-]{0,30}[a-z]",
        1 => Just("'16.4'".to_string()),
        1 => yaml_value(),
    ]
}

/// A db/docs file: mostly the two keys a loader reads, with random other keys around them,
/// sometimes a key missing or the whole file random.
fn docs_file(place: Place) -> impl Strategy<Value = Vec<u8>> {
    let name_key = match place {
        Place::Views | Place::DeletedViews => "view_name",
        _ => "table_name",
    };
    let name = prop_oneof![
        4 => "[a-z][a-z0-9_]{0,15}",
        1 => prop::sample::select(vec![
            "ci_builds", "projects", "p_ci_builds", "ci_builds_1", "_test_x", "pg_x", "a.b",
            "123", "true", "'quoted'",
        ]).prop_map(str::to_string),
        1 => yaml_value(),
    ];
    let schema = prop_oneof![
        6 => prop::sample::select(vec![
            "gitlab_main", "gitlab_ci", "gitlab_shared", "gitlab_main_cell", "gitlab_sec",
            ":gitlab_main", "gitlab_internal",
        ]).prop_map(str::to_string),
        1 => yaml_value(),
    ];
    let extra = (
        prop::sample::select(vec![
            "classes",
            "description",
            "milestone",
            "x",
            "sharding_key",
        ]),
        tame_value(),
        0usize..3,
    )
        .prop_map(|(key, value, shape)| match shape {
            0 => format!("{key}: {value}\n"),
            1 => format!("{key}:\n- {value}\n"),
            _ => format!("{key}:\n  project_id: {value}\n"),
        });
    let valid = (
        any::<bool>(),
        prop::option::weighted(0.95, name),
        prop::option::weighted(0.95, schema),
        prop::collection::vec(extra, 0..5),
        any::<prop::sample::Index>(),
        any::<prop::sample::Index>(),
    )
        .prop_map(move |(head, name, schema, mut lines, at_name, at_schema)| {
            if let Some(name) = name {
                lines.insert(
                    at_name.index(lines.len() + 1),
                    format!("{name_key}: {name}\n"),
                );
            }
            if let Some(schema) = schema {
                lines.insert(
                    at_schema.index(lines.len() + 1),
                    format!("gitlab_schema: {schema}\n"),
                );
            }
            let head = if head { "---\n" } else { "" };
            format!("{head}{}", lines.concat()).into_bytes()
        });
    prop_oneof![8 => valid, 1 => yaml_text()]
}

fn docs_dir() -> impl Strategy<Value = Vec<(Place, Vec<u8>)>> {
    let place = prop::sample::select(vec![
        Place::Tables,
        Place::Tables,
        Place::Tables,
        Place::Views,
        Place::DeletedTables,
        Place::DeletedViews,
        Place::Migrations,
    ]);
    let file = place.prop_flat_map(|place| (Just(place), docs_file(place)));
    prop::collection::vec(file, 1..8)
}

#[test]
fn any_db_docs_directory_loads_or_fails_cleanly() {
    fuzz("db_docs_dirs", "loaded", docs_dir(), |files| {
        let dir = tempfile::tempdir().unwrap();
        let docs = dir.path().join("db/docs");
        fs::create_dir_all(&docs).unwrap();
        let mut written = Vec::new();
        for (i, (place, text)) in files.iter().enumerate() {
            let path = write(&docs, &format!("{}f{i}.yml", place.dir()), text);
            written.push((*place, path));
        }
        let Ok(dict) = Dictionary::load(&[&docs]) else {
            return Ok(false);
        };
        if dict.sources().is_empty() {
            // Read as a directory of schema definitions: it holds no tables.
            prop_assert!(dict.is_empty());
            return Ok(true);
        }
        let mut live = BTreeMap::new();
        let mut deleted = Vec::new();
        for (place, path) in &written {
            if *place == Place::Migrations {
                continue;
            }
            let text = fs::read_to_string(path).expect("a loaded file is UTF-8");
            let doc: DocsKeys = serde_yaml::from_str::<Option<DocsKeys>>(&text)
                .expect("a loaded db/docs file parses")
                .expect("a loaded db/docs file is not empty");
            let name = match place {
                Place::Views | Place::DeletedViews => doc.view_name,
                _ => doc.table_name.or(doc.view_name),
            }
            .expect("a loaded db/docs file names its table");
            let schema = doc
                .gitlab_schema
                .expect("a loaded db/docs file has a gitlab_schema");
            let schema = schema.strip_prefix(':').unwrap_or(&schema).to_string();
            match place {
                Place::Tables | Place::Views => {
                    live.insert(name, schema);
                }
                _ => deleted.push(name),
            }
        }
        prop_assert_eq!(dict.len(), live.len());
        for (name, schema) in &live {
            if resolvable(name) {
                prop_assert_eq!(
                    dict.table_schema(name),
                    Some(schema.as_str()),
                    "table {:?}",
                    name
                );
            }
        }
        for name in deleted.iter().filter(|n| resolvable(n)) {
            prop_assert!(
                dict.table_schema(name).is_some(),
                "deleted table {:?}",
                name
            );
        }
        Ok(true)
    });
}

// ---------------------------------------------------------------------------------------------
// (c) topology

/// A database connection file: mostly `name`, `gitlab_schemas` and the optional keys with
/// values of the right shape, sometimes odd values, missing keys or random text.
fn connection_text() -> impl Strategy<Value = Vec<u8>> {
    let database = prop_oneof![
        6 => prop::sample::select(vec!["main", "ci", "sec", "embedding"]).prop_map(str::to_string),
        1 => yaml_value(),
    ];
    let list = |odd: u32| {
        prop::collection::vec(
            prop_oneof![
                8 => prop::sample::select(vec!["gitlab_main", "gitlab_ci", "gitlab_shared", "gitlab_internal"])
                    .prop_map(str::to_string),
                odd => yaml_value(),
            ],
            0..4,
        )
        .prop_map(|items| items.iter().map(|i| format!("  - {i}\n")).collect::<String>())
    };
    let valid = (
        prop::option::weighted(0.95, database.clone()),
        prop::option::weighted(0.95, list(1)),
        prop::option::of(list(1)),
        prop::option::weighted(0.3, database),
        prop::option::of(tame_value()),
    )
        .prop_map(|(name, schemas, locks, fallback, description)| {
            let mut text = String::new();
            if let Some(name) = name {
                text.push_str(&format!("name: {name}\n"));
            }
            if let Some(d) = description {
                text.push_str(&format!("description: {d}\n"));
            }
            if let Some(list) = schemas {
                text.push_str(&format!("gitlab_schemas:\n{list}"));
            }
            if let Some(list) = locks {
                text.push_str(&format!("lock_gitlab_schemas:\n{list}"));
            }
            if let Some(fallback) = fallback {
                text.push_str(&format!("fallback_database: {fallback}\n"));
            }
            text.into_bytes()
        });
    prop_oneof![8 => valid, 1 => yaml_text()]
}

#[test]
fn any_database_connections_directory_loads_or_fails_cleanly() {
    let strategy = prop::collection::vec(
        (
            prop::sample::select(vec!["yaml", "yml", "txt"]),
            connection_text(),
        ),
        0..5,
    );
    fuzz("topologies", "loaded", strategy, |files| {
        let dir = tempfile::tempdir().unwrap();
        for (i, (ext, text)) in files.iter().enumerate() {
            write(dir.path(), &format!("db{i}.{ext}"), text);
        }
        let Ok(topology) = Topology::load(dir.path()) else {
            return Ok(false);
        };
        let names = topology.names();
        prop_assert!(!names.is_empty());
        prop_assert_eq!(topology.allowed_schemas(&names).is_ok(), true);
        for db in topology.databases() {
            prop_assert_eq!(topology.database(&db.name), Some(db));
            if let Some(fallback) = &db.fallback_database {
                prop_assert!(fallback != &db.name && names.contains(fallback));
                prop_assert!(topology.served_with(fallback).contains(&db.name));
            }
        }
        prop_assert!(topology.allowed_schemas(&["no such database"]).is_err());
        Ok(true)
    });
}
