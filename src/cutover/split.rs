//! What a cutover moves, from the topology (docs/architecture.md section 10): the target database and the
//! databases that fall back to it go to the promoted replica; every other database the source
//! served stays. Splitting `ci` off a source serving main, ci and sec leaves main serving main
//! and sec.

use std::collections::BTreeSet;

use crate::error::{CutoverError, Error, Result};
use crate::topology::Topology;
use crate::{GITLAB_INTERNAL, GITLAB_SHARED};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Split {
    /// What the source served before the cutover.
    pub before: Vec<String>,
    /// The databases that move to the target: the target first, then what falls back to it.
    pub moving: Vec<String>,
    /// The databases that stay on the source: the source first.
    pub staying: Vec<String>,
}

impl Split {
    /// The split of `target` off a source whose identity serves `before`.
    pub fn new(topology: &Topology, source: &str, before: &[String], target: &str) -> Result<Self> {
        if !before.iter().any(|d| d == target) {
            return Err(Error::Cutover(CutoverError::CutoverState {
                message: format!(
                    "the source serves {} and not {target:?}: there is nothing to move; check the \
                     cutover's target",
                    before.join(", ")
                ),
            }));
        }
        let mut moving = vec![target.to_string()];
        // Databases falling back to one that moves, at any depth, move with it.
        let mut i = 0;
        while i < moving.len() {
            for db in topology.databases() {
                let falls_back = db.fallback_database.as_deref() == Some(moving[i].as_str());
                if falls_back && before.contains(&db.name) && !moving.contains(&db.name) {
                    moving.push(db.name.clone());
                }
            }
            i += 1;
        }
        if moving.iter().any(|d| d == source) {
            return Err(Error::Cutover(CutoverError::CutoverState {
                message: format!(
                    "the source database {source:?} falls back to {target:?}, so it would move \
                     too; a cutover moves a database off its source"
                ),
            }));
        }
        let mut staying: Vec<String> = before
            .iter()
            .filter(|d| !moving.contains(d))
            .cloned()
            .collect();
        staying.sort_by_key(|d| d != source);
        Ok(Split {
            before: before.to_vec(),
            moving,
            staying,
        })
    }

    /// The `gitlab_schemas` the source stops serving: its moving tables, fenced during the cutover.
    pub fn moving_schemas(&self, topology: &Topology) -> Result<Vec<String>> {
        let before = topology.allowed_schemas(&self.before)?;
        let after: BTreeSet<String> = topology
            .allowed_schemas(&self.staying)?
            .into_iter()
            .collect();
        Ok(before
            .into_iter()
            .filter(|s| !after.contains(s) && lockable(s))
            .collect())
    }
}

/// The `gitlab_schemas` whose tables a physical database serving `serves` write-locks: every schema
/// of the topology that none of the databases it serves owns. `gitlab_shared` and `gitlab_internal`
/// are never locked (every database has its own copy), nor is anything a database it still serves
/// owns. A retired database (serving nothing) locks everything.
pub fn locked_schemas(topology: &Topology, serves: &[String]) -> Result<Vec<String>> {
    let allowed: BTreeSet<String> = topology.allowed_schemas(serves)?.into_iter().collect();
    let all: BTreeSet<&String> = topology
        .databases()
        .iter()
        .flat_map(|d| &d.gitlab_schemas)
        .collect();
    Ok(all
        .into_iter()
        .filter(|s| !allowed.contains(*s) && lockable(s))
        .cloned()
        .collect())
}

fn lockable(schema: &str) -> bool {
    schema != GITLAB_SHARED && schema != GITLAB_INTERNAL
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::topology::Database;

    fn db(name: &str, schemas: &[&str], fallback: Option<&str>) -> Database {
        let mut gitlab_schemas = vec!["gitlab_internal".to_string(), "gitlab_shared".into()];
        gitlab_schemas.extend(schemas.iter().map(std::string::ToString::to_string));
        Database {
            name: name.into(),
            gitlab_schemas,
            lock_gitlab_schemas: vec![],
            fallback_database: fallback.map(Into::into),
        }
    }

    fn three() -> Topology {
        Topology::new(vec![
            db("main", &["gitlab_main"], None),
            db("ci", &["gitlab_ci"], Some("main")),
            db("sec", &["gitlab_sec"], Some("main")),
        ])
        .unwrap()
    }

    fn names(list: &[&str]) -> Vec<String> {
        list.iter().map(std::string::ToString::to_string).collect()
    }

    #[test]
    fn splitting_ci_leaves_sec_on_main() {
        let split = Split::new(&three(), "main", &names(&["main", "ci", "sec"]), "ci").unwrap();
        assert_eq!(split.moving, names(&["ci"]));
        assert_eq!(split.staying, names(&["main", "sec"]));
        assert_eq!(
            split.moving_schemas(&three()).unwrap(),
            names(&["gitlab_ci"])
        );
    }

    #[test]
    fn a_database_falling_back_to_the_moving_one_moves_with_it() {
        let topology = Topology::new(vec![
            db("main", &["gitlab_main"], None),
            db("ci", &["gitlab_ci"], Some("main")),
            db("ci_cell", &["gitlab_ci_cell_local"], Some("ci")),
        ])
        .unwrap();
        let split =
            Split::new(&topology, "main", &names(&["main", "ci", "ci_cell"]), "ci").unwrap();
        assert_eq!(split.moving, names(&["ci", "ci_cell"]));
        assert_eq!(split.staying, names(&["main"]));
    }

    #[test]
    fn a_second_split_moves_sec_off_main() {
        let split = Split::new(&three(), "main", &names(&["main", "sec"]), "sec").unwrap();
        assert_eq!(
            (split.moving, split.staying),
            (names(&["sec"]), names(&["main"]))
        );
    }

    #[test]
    fn a_target_the_source_does_not_serve_is_refused() {
        let err = Split::new(&three(), "main", &names(&["main", "sec"]), "ci").unwrap_err();
        assert!(err.to_string().contains("nothing to move"), "{err}");
    }

    #[test]
    fn locks_what_no_served_database_owns_never_shared_or_internal() {
        let topology = three();
        assert_eq!(
            locked_schemas(&topology, &names(&["main", "sec"])).unwrap(),
            names(&["gitlab_ci"])
        );
        assert_eq!(
            locked_schemas(&topology, &names(&["ci"])).unwrap(),
            names(&["gitlab_main", "gitlab_sec"])
        );
        assert!(locked_schemas(&topology, &names(&["main", "ci", "sec"]))
            .unwrap()
            .is_empty());
        assert_eq!(
            locked_schemas(&topology, &[]).unwrap(),
            names(&["gitlab_ci", "gitlab_main", "gitlab_sec"])
        );
    }
}
