//! Identifiers in SQL text: every table and column name is checked and double-quoted; values are
//! always bound parameters, never part of the text.

use crate::error::{Error, Result};

/// PostgreSQL silently truncates longer identifiers (NAMEDATALEN - 1), which could name another
/// table, so a longer name is refused instead.
pub const MAX_IDENTIFIER_BYTES: usize = 63;

/// Checks `name` as a PostgreSQL identifier of the given kind ("table", "column").
pub fn check_identifier(kind: &'static str, name: &str) -> Result<()> {
    let problem = if name.is_empty() {
        Some("is empty".to_string())
    } else if name.len() > MAX_IDENTIFIER_BYTES {
        Some(format!(
            "is {} bytes long; PostgreSQL truncates identifiers to {MAX_IDENTIFIER_BYTES} bytes, \
             so it could name another {kind}",
            name.len()
        ))
    } else if name.contains('\0') {
        Some("contains a NUL byte".to_string())
    } else {
        None
    };
    match problem {
        Some(problem) => Err(Error::InvalidIdentifier {
            kind,
            name: name.to_string(),
            problem,
        }),
        None => Ok(()),
    }
}

/// `name` as a quoted identifier: `"name"`, with inner quotes doubled.
pub fn quote_ident(name: &str) -> String {
    let mut quoted = String::with_capacity(name.len() + 2);
    quoted.push('"');
    for c in name.chars() {
        if c == '"' {
            quoted.push('"');
        }
        quoted.push(c);
    }
    quoted.push('"');
    quoted
}

/// A table name that may carry a PostgreSQL schema (`public.ci_builds`), each part quoted.
pub fn quote_table(name: &str) -> Result<String> {
    if let Some((schema, table)) = name.split_once('.') {
        check_identifier("schema", schema)?;
        check_identifier("table", table)?;
        Ok(format!("{}.{}", quote_ident(schema), quote_ident(table)))
    } else {
        check_identifier("table", name)?;
        Ok(quote_ident(name))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotes_and_doubles_inner_quotes() {
        assert_eq!(quote_ident("ci_builds"), "\"ci_builds\"");
        assert_eq!(
            quote_ident("a\"; DROP TABLE x; --"),
            "\"a\"\"; DROP TABLE x; --\""
        );
        assert_eq!(
            quote_table("public.Projects").unwrap(),
            "\"public\".\"Projects\""
        );
    }

    #[test]
    fn refuses_names_postgres_would_truncate() {
        let long = "t".repeat(64);
        assert!(check_identifier("table", &long).is_err());
        assert!(check_identifier("table", &"t".repeat(63)).is_ok());
        assert!(check_identifier("column", "").is_err());
    }
}
