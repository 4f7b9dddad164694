//! The tables of some `gitlab_schemas` in one physical database: every relation whose name the
//! dictionary resolves to one of them (in any PostgreSQL schema, so GitLab's partition schemas
//! too), and every partition of those, whatever its name.

use std::collections::BTreeMap;

use postgres::types::Oid;
use postgres::GenericClient;

use crate::dictionary::Dictionary;
use crate::error::Result;

/// One table or partitioned table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Relation {
    /// As `regclass` prints it: schema-qualified where needed, quoted where needed, so it can be
    /// put into DDL as is.
    pub name: String,
    pub partitioned: bool,
    /// The `gitlab_schema` it belongs to (a partition's is its parent's).
    pub gitlab_schema: String,
}

const RELATIONS: &str =
    "SELECT c.oid, c.oid::regclass::text, n.nspname, c.relname, c.relkind = 'p' \
    FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
    WHERE c.relkind IN ('r', 'p') AND n.nspname NOT IN ('pg_catalog', 'information_schema') \
      AND n.nspname NOT LIKE 'pg\\_toast%'";

const PARTITIONS: &str = "SELECT c.oid, c.oid::regclass::text, c.relkind = 'p', i.inhparent \
    FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid \
    WHERE i.inhparent = ANY($1) AND c.relkind IN ('r', 'p')";

/// The relations of `schemas`, sorted by name.
pub fn tables_of(
    db: &mut impl GenericClient,
    dictionary: &Dictionary,
    schemas: &[String],
) -> Result<Vec<Relation>> {
    let mut found: BTreeMap<Oid, Relation> = BTreeMap::new();
    if schemas.is_empty() {
        return Ok(vec![]);
    }
    for row in db.query(RELATIONS, &[])? {
        let (namespace, relname): (&str, &str) = (row.get(2), row.get(3));
        let name = if namespace == "public" {
            relname.to_string()
        } else {
            format!("{namespace}.{relname}")
        };
        let Some(schema) = dictionary.table_schema(&name) else {
            continue;
        };
        if schemas.iter().any(|s| s == schema) {
            found.insert(
                row.get(0),
                Relation {
                    name: row.get(1),
                    partitioned: row.get(4),
                    gitlab_schema: schema.to_string(),
                },
            );
        }
    }
    // A partition belongs to its parent's gitlab_schema whatever it is called.
    let mut parents: Vec<Oid> = found
        .iter()
        .filter(|(_, r)| r.partitioned)
        .map(|(oid, _)| *oid)
        .collect();
    while !parents.is_empty() {
        let mut next = Vec::new();
        for row in db.query(PARTITIONS, &[&parents])? {
            let (oid, parent): (Oid, Oid) = (row.get(0), row.get(3));
            let partitioned: bool = row.get(2);
            let gitlab_schema = found[&parent].gitlab_schema.clone();
            let relation = Relation {
                name: row.get(1),
                partitioned,
                gitlab_schema,
            };
            if found.insert(oid, relation).is_none() && partitioned {
                next.push(oid);
            }
        }
        parents = next;
    }
    let mut relations: Vec<Relation> = found.into_values().collect();
    relations.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(relations)
}

/// Table names for a plan or a step's detail: all of them, or the first ones and a count.
pub fn describe(relations: &[Relation]) -> String {
    const SHOWN: usize = 12;
    if relations.is_empty() {
        return "no tables".into();
    }
    let names: Vec<&str> = relations
        .iter()
        .take(SHOWN)
        .map(|r| r.name.as_str())
        .collect();
    if relations.len() > SHOWN {
        format!(
            "{} tables: {}, ... and {} more",
            relations.len(),
            names.join(", "),
            relations.len() - SHOWN
        )
    } else {
        format!(
            "{} table{}: {}",
            relations.len(),
            if relations.len() == 1 { "" } else { "s" },
            names.join(", ")
        )
    }
}
