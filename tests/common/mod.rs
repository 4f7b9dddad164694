//! Helpers shared by the integration tests: fixture paths and small dictionaries on disk.
#![allow(dead_code)]

use std::fs;
use std::path::{Path, PathBuf};

/// `../shared/fixtures/gitlab`, beside the repository.
pub fn gitlab_fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/fixtures/gitlab")
}

pub fn write(dir: &Path, relative: &str, text: &str) -> PathBuf {
    let path = dir.join(relative);
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(&path, text).unwrap();
    path
}

/// The `db_docs_tables.tsv` pairs, as (table, schema).
pub fn db_docs_pairs() -> Vec<(String, String)> {
    let text = fs::read_to_string(gitlab_fixtures().join("db_docs_tables.tsv")).unwrap();
    text.lines()
        .skip(1)
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let (t, s) = l.split_once('\t').unwrap();
            (t.to_string(), s.trim().to_string())
        })
        .collect()
}

/// Writes the pairs as a db/docs directory in GitLab's file shape.
pub fn write_db_docs(dir: &Path, pairs: &[(String, String)]) -> PathBuf {
    let docs = dir.join("db/docs");
    for (table, schema) in pairs {
        write(
            &docs,
            &format!("{table}.yml"),
            &format!(
                "---\ntable_name: {table}\nclasses:\n- Some::Model\nfeature_categories:\n- database\n\
                 description: Rows of {table}\nintroduced_by_url: https://example.com/mr/1\n\
                 milestone: '16.0'\ngitlab_schema: {schema}\n"
            ),
        );
    }
    docs
}
