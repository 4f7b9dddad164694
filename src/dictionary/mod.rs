//! The dictionary: table → `gitlab_schema`, loaded from GitLab's formats (docs/architecture.md section 4).

mod error;
pub use error::DictionaryError;

mod build;
mod resolve;
mod sources;

use std::path::{Path, PathBuf};

use rustc_hash::FxHashMap;

use crate::error::{Error, Result};

pub use resolve::{Resolution, Rule};

/// Index into [`Dictionary::schema_names`]: schema names are interned once per dictionary.
pub type SchemaId = u32;

#[derive(Debug, Clone, Copy)]
struct Entry {
    schema: SchemaId,
}

/// An immutable map of table names to `gitlab_schemas`, with GitLab's resolution rules.
#[derive(Debug, Default)]
pub struct Dictionary {
    schema_names: Vec<String>,
    tables: FxHashMap<Box<str>, Entry>,
    deleted: FxHashMap<Box<str>, Entry>,
    sources: Vec<PathBuf>,
    internal: SchemaId,
    shared: SchemaId,
}

impl Dictionary {
    /// Loads and merges every source; each path is a flat map file, a `db/docs` directory or a
    /// schema definitions directory, told apart by content.
    pub fn load<P: AsRef<Path>>(paths: &[P]) -> Result<Self> {
        let mut builder = build::Builder::default();
        for path in paths {
            sources::load_into(&mut builder, path.as_ref())?;
        }
        builder.finish()
    }

    /// The `gitlab_schema` of `name` under the rules of docs/architecture.md section 4, or `None`.
    pub fn table_schema(&self, name: &str) -> Option<&str> {
        self.resolve(name).map(|r| self.schema_name(r.schema))
    }

    /// Like [`table_schema`](Self::table_schema), but an unknown table is an error naming the
    /// table and the sources searched.
    pub fn table_schema_strict(&self, name: &str) -> Result<&str> {
        self.table_schema(name).ok_or_else(|| {
            Error::Dictionary(DictionaryError::UnknownTable {
                table: name.to_string(),
                sources: self.sources.clone(),
            })
        })
    }

    pub fn schema_name(&self, id: SchemaId) -> &str {
        &self.schema_names[id as usize]
    }

    /// Every interned schema name, indexed by [`SchemaId`].
    pub fn schema_names(&self) -> &[String] {
        &self.schema_names
    }

    /// Names of the live tables and views of `schema`, sorted.
    pub fn tables(&self, schema: &str) -> Vec<&str> {
        let mut names: Vec<&str> = self
            .tables
            .iter()
            .filter(|(_, e)| self.schema_name(e.schema) == schema)
            .map(|(name, _)| &**name)
            .collect();
        names.sort_unstable();
        names
    }

    /// The `gitlab_schemas` that at least one live table or view belongs to, sorted.
    pub fn schemas(&self) -> Vec<&str> {
        let mut used = vec![false; self.schema_names.len()];
        for entry in self.tables.values() {
            used[entry.schema as usize] = true;
        }
        let mut names: Vec<&str> = self
            .schema_names
            .iter()
            .zip(used)
            .filter(|(_, used)| *used)
            .map(|(name, _)| name.as_str())
            .collect();
        names.sort_unstable();
        names
    }

    /// Number of live tables and views.
    pub fn len(&self) -> usize {
        self.tables.len()
    }

    pub fn is_empty(&self) -> bool {
        self.tables.is_empty()
    }

    /// The files and directories the dictionary was loaded from, in load order.
    pub fn sources(&self) -> &[PathBuf] {
        &self.sources
    }
}
