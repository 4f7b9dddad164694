//! Reading each kind of dictionary source: a flat map file, a `db/docs` directory, or a directory
//! of schema definitions. A directory's kind is told from its content.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::build::{Builder, Kind, Origin};
use crate::error::{DictionaryError, Error, Result, YamlError};
use crate::yaml;

pub(super) fn load_into(builder: &mut Builder, path: &Path) -> Result<()> {
    let meta = std::fs::metadata(path).map_err(|e| Error::read(path, e))?;
    if meta.is_file() {
        return load_flat_file(builder, path);
    }
    let files = yaml::yaml_files(path)?;
    let subdirs = DocsSubdir::ALL
        .iter()
        .any(|sub| path.join(sub.dir()).is_dir());
    if subdirs {
        return load_docs(builder, path, files);
    }
    let Some(first) = files.first() else {
        return Err(Error::Dictionary(DictionaryError::UnrecognizedSource {
            path: path.to_path_buf(),
            message: "directory holds no .yml or .yaml files; expected a db/docs directory \
                      or a db/gitlab_schemas directory"
                .into(),
        }));
    };
    let probe: Probe = yaml::parse(first, &yaml::read(first)?)?;
    if probe.table_name.is_some() || probe.view_name.is_some() || probe.gitlab_schema.is_some() {
        load_docs(builder, path, files)
    } else if probe.gitlab_schemas.is_some() {
        Err(Error::Dictionary(DictionaryError::UnrecognizedSource {
            path: path.to_path_buf(),
            message: "this is a database connections directory; load it with Topology.load".into(),
        }))
    } else if probe.name.is_some() {
        load_definitions(builder, &files)
    } else {
        Err(Error::Dictionary(DictionaryError::UnrecognizedSource {
            path: first.clone(),
            message:
                "has none of `table_name`, `view_name`, `gitlab_schema` (a db/docs file) or `name` \
                      (a schema definition); cannot tell what this directory holds"
                    .into(),
        }))
    }
}

#[derive(Deserialize)]
struct Probe {
    table_name: Option<serde::de::IgnoredAny>,
    view_name: Option<serde::de::IgnoredAny>,
    gitlab_schema: Option<serde::de::IgnoredAny>,
    gitlab_schemas: Option<serde::de::IgnoredAny>,
    name: Option<serde::de::IgnoredAny>,
}

fn load_flat_file(builder: &mut Builder, path: &Path) -> Result<()> {
    let text = yaml::read(path)?;
    let entries: Option<FlatMap> = yaml::parse(path, &text)?;
    builder.add_source(path);
    let lines = key_lines(&text);
    for (table, schema) in entries.map(|m| m.0).unwrap_or_default() {
        let origin = Origin {
            path: path.to_path_buf(),
            line: lines.get(table.as_str()).copied(),
        };
        builder.add(Kind::Live, &table, &schema, origin)?;
    }
    Ok(())
}

/// The pairs of a flat map in file order; a map (not a Vec of pairs) would hide duplicate keys.
struct FlatMap(Vec<(String, String)>);

impl<'de> Deserialize<'de> for FlatMap {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = FlatMap;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a map of table names to gitlab_schemas (`table: :gitlab_main`)")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> std::result::Result<FlatMap, A::Error> {
                let mut pairs = Vec::with_capacity(map.size_hint().unwrap_or(0));
                while let Some(pair) = map.next_entry::<String, String>()? {
                    pairs.push(pair);
                }
                Ok(FlatMap(pairs))
            }
        }
        d.deserialize_map(Visitor)
    }
}

/// The line of each top-level key (its first one), in one pass: the load stays linear in the
/// file's size.
fn key_lines(text: &str) -> rustc_hash::FxHashMap<&str, usize> {
    let mut lines = rustc_hash::FxHashMap::default();
    for (i, line) in text.lines().enumerate() {
        if line.starts_with([' ', '\t', '#', '-']) {
            continue;
        }
        let Some((key, _)) = line.split_once(':') else {
            continue;
        };
        let key = key.trim_end();
        let key = key
            .strip_prefix(['"', '\''])
            .and_then(|k| k.strip_suffix(['"', '\'']))
            .unwrap_or(key);
        lines.entry(key).or_insert(i + 1);
    }
    lines
}

#[derive(Clone, Copy)]
enum DocsSubdir {
    Views,
    DeletedTables,
    DeletedViews,
}

impl DocsSubdir {
    const ALL: [DocsSubdir; 3] = [Self::Views, Self::DeletedTables, Self::DeletedViews];

    fn dir(self) -> &'static str {
        match self {
            Self::Views => "views",
            Self::DeletedTables => "deleted_tables",
            Self::DeletedViews => "deleted_views",
        }
    }

    fn kind(self) -> Kind {
        match self {
            Self::Views => Kind::Live,
            _ => Kind::Deleted,
        }
    }

    fn name_key(self) -> &'static str {
        match self {
            Self::Views | Self::DeletedViews => "view_name",
            Self::DeletedTables => "table_name",
        }
    }
}

/// The keys we read from a db/docs file; GitLab's other keys are parsed for validity and ignored.
#[derive(Deserialize)]
struct DocsFile {
    table_name: Option<String>,
    view_name: Option<String>,
    gitlab_schema: Option<String>,
}

struct DocsRecord {
    path: PathBuf,
    name: String,
    schema: String,
}

fn load_docs(builder: &mut Builder, dir: &Path, tables: Vec<PathBuf>) -> Result<()> {
    builder.add_source(dir);
    // `batched_background_migrations/` and any other subfolder are not tables: only these are read.
    let mut groups = vec![(Kind::Live, "table_name", tables)];
    for sub in DocsSubdir::ALL {
        let sub_dir = dir.join(sub.dir());
        if sub_dir.is_dir() {
            groups.push((sub.kind(), sub.name_key(), yaml::yaml_files(&sub_dir)?));
        }
    }
    // Every file is parsed in one parallel pass; results are then taken group by group, in file
    // order, so the error reported is the one a sequential load would meet first.
    let jobs: Vec<(&Path, &'static str)> = groups
        .iter()
        .flat_map(|(_, key, files)| files.iter().map(move |f| (f.as_path(), *key)))
        .collect();
    let mut records = parse_docs_parallel(&jobs).into_iter();
    for (kind, _, files) in &groups {
        let group: Vec<Result<DocsRecord>> = records.by_ref().take(files.len()).collect();
        for record in group.into_iter().collect::<Result<Vec<_>>>()? {
            let origin = Origin {
                path: record.path,
                line: None,
            };
            builder.add(*kind, &record.name, &record.schema, origin)?;
        }
    }
    Ok(())
}

/// Files are independent, so they are read and parsed on every core, each thread reusing one
/// read buffer; results keep file order.
fn parse_docs_parallel(jobs: &[(&Path, &'static str)]) -> Vec<Result<DocsRecord>> {
    let parse_all = |part: &[(&Path, &'static str)]| {
        let mut buf = Vec::new();
        part.iter()
            .map(|(path, key)| parse_docs_file(path, key, &mut buf))
            .collect::<Vec<_>>()
    };
    let threads = std::thread::available_parallelism()
        .map_or(1, std::num::NonZero::get)
        .min(jobs.len().div_ceil(64).max(1));
    if threads <= 1 {
        return parse_all(jobs);
    }
    let chunk = jobs.len().div_ceil(threads);
    std::thread::scope(|scope| {
        let handles: Vec<_> = jobs
            .chunks(chunk)
            .map(|part| scope.spawn(move || parse_all(part)))
            .collect();
        let mut out = Vec::with_capacity(jobs.len());
        for handle in handles {
            out.extend(handle.join().expect("db/docs parser thread panicked"));
        }
        out
    })
}

const DOCS_KEYS: [&str; 3] = ["table_name", "view_name", "gitlab_schema"];

fn parse_docs_file(path: &Path, key: &'static str, buf: &mut Vec<u8>) -> Result<DocsRecord> {
    let text = yaml::read_into(path, buf)?;
    // Most db/docs files are plain `key: value` lines that a line scanner reads exactly; any
    // other text (and every malformed one) goes through serde_yaml.
    let doc: Option<DocsFile> = match yaml::scan_simple_mapping(text, DOCS_KEYS) {
        Some([table_name, view_name, gitlab_schema]) => Some(DocsFile {
            table_name: table_name.map(str::to_string),
            view_name: view_name.map(str::to_string),
            gitlab_schema: gitlab_schema.map(str::to_string),
        }),
        None => yaml::parse(path, text)?,
    };
    let doc = doc.ok_or(Error::Yaml(YamlError::MissingKey {
        path: path.to_path_buf(),
        key,
        hint: "the file is empty; a db/docs file needs the table's name and its gitlab_schema",
    }))?;
    let name = if key == "view_name" {
        doc.view_name
    } else {
        doc.table_name.or(doc.view_name)
    };
    let name = name.ok_or(Error::Yaml(YamlError::MissingKey {
        path: path.to_path_buf(),
        key,
        hint: "a db/docs file names its table (or view) so it can be given a gitlab_schema",
    }))?;
    let schema = doc.gitlab_schema.ok_or(Error::Yaml(YamlError::MissingKey {
        path: path.to_path_buf(),
        key: "gitlab_schema",
        hint: "add `gitlab_schema: gitlab_main` (or the schema the table belongs to)",
    }))?;
    Ok(DocsRecord {
        path: path.to_path_buf(),
        name,
        schema,
    })
}

#[derive(Deserialize)]
struct Definition {
    name: Option<String>,
}

fn load_definitions(builder: &mut Builder, files: &[PathBuf]) -> Result<()> {
    for path in files {
        let def: Option<Definition> = yaml::parse(path, &yaml::read(path)?)?;
        let name = def
            .and_then(|d| d.name)
            .ok_or(Error::Yaml(YamlError::MissingKey {
                path: path.clone(),
                key: "name",
                hint:
                    "a schema definition (db/gitlab_schemas/*.yaml) needs `name: gitlab_<schema>`",
            }))?;
        builder.define_schema(&name);
    }
    Ok(())
}
