//! Merging sources into a dictionary, with the cross-source checks of docs/architecture.md section 4.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use rustc_hash::FxHashMap;

use super::{Dictionary, Entry, SchemaId};
use crate::error::{DictionaryError, Error, Result};
use crate::{GITLAB_INTERNAL, GITLAB_SHARED};

/// Where an entry was found: the file, and for a flat map file the line, so errors can point at it.
#[derive(Debug, Clone)]
pub(super) struct Origin {
    pub path: PathBuf,
    pub line: Option<usize>,
}

#[derive(Debug, Clone, Copy)]
pub(super) enum Kind {
    Live,
    Deleted,
}

#[derive(Default)]
pub(super) struct Builder {
    dict: Dictionary,
    schema_ids: FxHashMap<String, SchemaId>,
    /// Per schema id, where it was first named (for the undefined-schema check at the end).
    first_use: FxHashMap<SchemaId, (String, Origin)>,
    origins: FxHashMap<(bool, Box<str>), Origin>,
    defined: Option<BTreeSet<String>>,
}

impl Builder {
    pub fn add_source(&mut self, path: &Path) {
        self.dict.sources.push(path.to_path_buf());
    }

    fn intern(&mut self, schema: &str) -> SchemaId {
        if let Some(&id) = self.schema_ids.get(schema) {
            return id;
        }
        let id = SchemaId::try_from(self.dict.schema_names.len())
            .expect("fewer than 2^32 gitlab_schemas");
        self.dict.schema_names.push(schema.to_string());
        self.schema_ids.insert(schema.to_string(), id);
        id
    }

    pub fn define_schema(&mut self, name: &str) {
        self.defined
            .get_or_insert_with(BTreeSet::new)
            .insert(name.to_string());
    }

    pub fn add(&mut self, kind: Kind, table: &str, schema: &str, origin: Origin) -> Result<()> {
        let schema = schema.strip_prefix(':').unwrap_or(schema);
        if let Some(problem) = blank_name(table).or_else(|| invalid_schema(schema)) {
            // A db/docs record keeps no line: find its gitlab_schema key (the cold path only).
            let line = origin.line.or_else(|| {
                std::fs::read_to_string(&origin.path).ok().and_then(|text| {
                    text.lines()
                        .position(|l| l.starts_with("gitlab_schema:"))
                        .map(|i| i + 1)
                })
            });
            return Err(Error::Dictionary(DictionaryError::InvalidEntry {
                path: origin.path,
                line,
                table: table.to_string(),
                problem,
            }));
        }
        let id = self.intern(schema);
        self.first_use
            .entry(id)
            .or_insert_with(|| (table.to_string(), origin.clone()));
        let deleted = matches!(kind, Kind::Deleted);
        let map = if deleted {
            &mut self.dict.deleted
        } else {
            &mut self.dict.tables
        };
        match map.get(table) {
            Some(existing) if existing.schema != id => {
                let first = &self.origins[&(deleted, Box::from(table))];
                Err(Error::Dictionary(DictionaryError::ConflictingSchema {
                    table: table.to_string(),
                    first_schema: self.dict.schema_names[existing.schema as usize].clone(),
                    first_path: first.path.clone(),
                    second_schema: schema.to_string(),
                    second_path: origin.path,
                }))
            }
            Some(_) => Ok(()),
            None => {
                map.insert(table.into(), Entry { schema: id });
                self.origins.insert((deleted, table.into()), origin);
                Ok(())
            }
        }
    }

    pub fn finish(mut self) -> Result<Dictionary> {
        if let Some(defined) = &self.defined {
            let mut undefined: Vec<(&SchemaId, &(String, Origin))> = self
                .first_use
                .iter()
                .filter(|(id, _)| !defined.contains(&self.dict.schema_names[**id as usize]))
                .collect();
            undefined.sort_by_key(|(id, _)| **id);
            if let Some((id, (table, origin))) = undefined.first() {
                let path = match origin.line {
                    Some(line) => PathBuf::from(format!("{}:{line}", origin.path.display())),
                    None => origin.path.clone(),
                };
                return Err(Error::Dictionary(DictionaryError::UndefinedSchema {
                    table: table.clone(),
                    schema: self.dict.schema_names[**id as usize].clone(),
                    path,
                    defined: defined.iter().cloned().collect(),
                }));
            }
        }
        // Defined schemas are known names even without tables, e.g. for `_test_gitlab_<schema>_`.
        for name in self.defined.take().unwrap_or_default() {
            self.intern(&name);
        }
        self.dict.internal = self.intern(GITLAB_INTERNAL);
        self.dict.shared = self.intern(GITLAB_SHARED);
        Ok(self.dict)
    }
}

/// Why a table name is unusable, if it is.
fn blank_name(table: &str) -> Option<String> {
    (table.trim().is_empty()).then(|| "the table name is blank".to_string())
}

/// Why a `gitlab_schema` is unusable, if it is: empty, `~` (YAML's null), or not a name.
fn invalid_schema(schema: &str) -> Option<String> {
    let valid = !schema.is_empty()
        && schema.len() <= 63
        && schema
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_')
        && !schema.as_bytes()[0].is_ascii_digit();
    if valid {
        return None;
    }
    let shown = match schema.trim() {
        "" if schema.is_empty() => "an empty gitlab_schema".to_string(),
        "" => format!("a blank gitlab_schema ({schema:?})"),
        "~" | "null" => "gitlab_schema ~ (YAML's null)".to_string(),
        _ => format!("gitlab_schema {schema:?}, which is not a schema name"),
    };
    Some(format!("{shown}; give one such as gitlab_main"))
}
