//! Parsing one YAML document into a typed value, with errors that carry the file and line.

use std::path::Path;

use serde::de::DeserializeOwned;

use crate::error::{Error, Result};

pub(crate) fn read(path: &Path) -> Result<String> {
    std::fs::read_to_string(path).map_err(|e| Error::read(path, e))
}

pub(crate) fn parse<T: DeserializeOwned>(path: &Path, text: &str) -> Result<T> {
    serde_yaml::from_str(text).map_err(|e| malformed(path, &e))
}

pub(crate) fn malformed(path: &Path, e: &serde_yaml::Error) -> Error {
    let (line, column) = e
        .location()
        .map(|l| (l.line(), l.column()))
        .unwrap_or((1, 1));
    Error::MalformedYaml {
        path: path.to_path_buf(),
        line,
        column,
        message: strip_location(&e.to_string()),
    }
}

/// serde_yaml repeats the location at the end of its message; ours leads with it.
fn strip_location(message: &str) -> String {
    match message.rfind(" at line ") {
        Some(i) => message[..i].to_string(),
        None => message.to_string(),
    }
}

/// Files directly in `dir` ending in `.yml` or `.yaml`, sorted so loading is deterministic.
pub(crate) fn yaml_files(dir: &Path) -> Result<Vec<std::path::PathBuf>> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(|e| Error::read(dir, e))? {
        let entry = entry.map_err(|e| Error::read(dir, e))?;
        let path = entry.path();
        let is_yaml = matches!(
            path.extension().and_then(|e| e.to_str()),
            Some("yml") | Some("yaml")
        );
        if is_yaml && path.is_file() {
            files.push(path);
        }
    }
    files.sort();
    Ok(files)
}
