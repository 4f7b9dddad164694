//! The databases of the app and the `gitlab_schemas` each owns, from GitLab's
//! `db/database_connections/*.yaml`.

mod error;
pub use error::TopologyError;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::error::{Error, Result, YamlError};
use crate::yaml;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Database {
    pub name: String,
    pub gitlab_schemas: Vec<String>,
    pub lock_gitlab_schemas: Vec<String>,
    /// The database whose physical database this one shares until it is split out.
    pub fallback_database: Option<String>,
}

#[derive(Debug, Clone)]
pub struct Topology {
    databases: Vec<Database>,
    path: PathBuf,
}

#[derive(Deserialize)]
struct ConnectionFile {
    name: Option<String>,
    gitlab_schemas: Option<Vec<String>>,
    #[serde(default)]
    lock_gitlab_schemas: Vec<String>,
    fallback_database: Option<String>,
}

impl Topology {
    /// Reads every `*.yaml` / `*.yml` in `dir`, one database per file.
    pub fn load(dir: &Path) -> Result<Self> {
        let files = yaml::yaml_files(dir)?;
        if files.is_empty() {
            return Err(Error::Topology(TopologyError::Topology {
                path: dir.to_path_buf(),
                message: "no database connection files (*.yaml) in this directory".into(),
            }));
        }
        let mut databases: Vec<Database> = Vec::with_capacity(files.len());
        for path in &files {
            let file: Option<ConnectionFile> = yaml::parse(path, &yaml::read(path)?)?;
            let file = file.ok_or(Error::Yaml(YamlError::MissingKey {
                path: path.clone(),
                key: "name",
                hint: "the file is empty; a database connection file needs `name` and `gitlab_schemas`",
            }))?;
            let name = file.name.ok_or(Error::Yaml(YamlError::MissingKey {
                path: path.clone(),
                key: "name",
                hint: "name the database, e.g. `name: ci`",
            }))?;
            let gitlab_schemas = file
                .gitlab_schemas
                .ok_or(Error::Yaml(YamlError::MissingKey {
                    path: path.clone(),
                    key: "gitlab_schemas",
                    hint: "list the gitlab_schemas this database owns",
                }))?;
            if databases.iter().any(|d| d.name == name) {
                return Err(Error::Topology(TopologyError::Topology {
                    path: path.clone(),
                    message: format!("database {name:?} is defined twice"),
                }));
            }
            databases.push(Database {
                name,
                gitlab_schemas,
                lock_gitlab_schemas: file.lock_gitlab_schemas,
                fallback_database: file.fallback_database,
            });
        }
        let topology = Topology {
            databases,
            path: dir.to_path_buf(),
        };
        topology.check_fallbacks(&files)?;
        Ok(topology)
    }

    /// Builds a topology from values (for apps that configure it in code).
    pub fn new(databases: Vec<Database>) -> Result<Self> {
        let topology = Topology {
            databases,
            path: PathBuf::from("(configured in code)"),
        };
        let paths = vec![topology.path.clone(); topology.databases.len()];
        topology.check_fallbacks(&paths)?;
        Ok(topology)
    }

    fn check_fallbacks(&self, paths: &[PathBuf]) -> Result<()> {
        for (db, path) in self.databases.iter().zip(paths) {
            if let Some(fallback) = &db.fallback_database {
                if self.database(fallback).is_none() || fallback == &db.name {
                    return Err(Error::Topology(TopologyError::Topology {
                        path: path.clone(),
                        message: format!(
                            "database {:?} falls back to {fallback:?}, which is not another database of \
                             the topology ({})",
                            db.name,
                            self.names().join(", ")
                        ),
                    }));
                }
            }
        }
        // A chain of fallbacks must end: a <-> b (or longer) would leave no owner.
        for (db, path) in self.databases.iter().zip(paths) {
            let mut chain = vec![db.name.as_str()];
            let mut at = db;
            while let Some(next) = at.fallback_database.as_deref() {
                if chain.contains(&next) {
                    chain.push(next);
                    return Err(Error::Topology(TopologyError::Topology {
                        path: path.clone(),
                        message: format!(
                            "the fallback databases form a cycle ({}): each database must fall back, \
                             directly or through others, to one that falls back to none",
                            chain.join(" -> ")
                        ),
                    }));
                }
                chain.push(next);
                at = self.database(next).expect("checked above");
            }
        }
        Ok(())
    }

    pub fn databases(&self) -> &[Database] {
        &self.databases
    }

    pub fn database(&self, name: &str) -> Option<&Database> {
        self.databases.iter().find(|d| d.name == name)
    }

    pub fn names(&self) -> Vec<String> {
        self.databases.iter().map(|d| d.name.clone()).collect()
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The union of the `gitlab_schemas` of the named databases: what a physical database serving
    /// them may hold. Sorted.
    pub fn allowed_schemas<S: AsRef<str>>(&self, serves: &[S]) -> Result<Vec<String>> {
        let mut allowed = BTreeSet::new();
        for name in serves {
            let db = self.database(name.as_ref()).ok_or_else(|| {
                Error::Topology(TopologyError::UnknownDatabase {
                    name: name.as_ref().to_string(),
                    known: self.names(),
                })
            })?;
            allowed.extend(db.gitlab_schemas.iter().cloned());
        }
        Ok(allowed.into_iter().collect())
    }

    /// The databases that share `name`'s physical database while they fall back to it, `name` first.
    pub fn served_with(&self, name: &str) -> Vec<String> {
        let mut serves = vec![name.to_string()];
        serves.extend(
            self.databases
                .iter()
                .filter(|d| d.fallback_database.as_deref() == Some(name))
                .map(|d| d.name.clone()),
        );
        serves
    }
}
