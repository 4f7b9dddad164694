//! Parsing one YAML document into a typed value, with errors that carry the file and line.

mod error;
pub use error::YamlError;

use std::path::Path;

use serde::de::DeserializeOwned;

use crate::error::{Error, Result};

pub(crate) fn read(path: &Path) -> Result<String> {
    std::fs::read_to_string(path).map_err(|e| Error::read(path, e))
}

/// Like [`read`], into a scratch buffer the caller reuses across files: no allocation per file
/// and no `statx` for a size hint. A file that is not UTF-8 is the same error as from [`read`].
pub(crate) fn read_into<'b>(path: &Path, buf: &'b mut Vec<u8>) -> Result<&'b str> {
    use std::io::Read;
    let mut file = std::fs::File::open(path).map_err(|e| Error::read(path, e))?;
    let mut len = 0;
    loop {
        if len == buf.len() {
            buf.resize((buf.len() * 2).max(16 * 1024), 0);
        }
        match file.read(&mut buf[len..]) {
            Ok(0) => break,
            Ok(n) => len += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(Error::read(path, e)),
        }
    }
    std::str::from_utf8(&buf[..len]).map_err(|_| {
        let e = std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            "stream did not contain valid UTF-8",
        );
        Error::read(path, e)
    })
}

pub(crate) fn parse<T: DeserializeOwned>(path: &Path, text: &str) -> Result<T> {
    serde_yaml::from_str(text).map_err(|e| malformed(path, &e))
}

pub(crate) fn malformed(path: &Path, e: &serde_yaml::Error) -> Error {
    let (line, column) = e.location().map_or((1, 1), |l| (l.line(), l.column()));
    Error::Yaml(YamlError::MalformedYaml {
        path: path.to_path_buf(),
        line,
        column,
        message: strip_location(&e.to_string()),
    })
}

/// `serde_yaml` repeats the location at the end of its message; ours leads with it.
fn strip_location(message: &str) -> String {
    match message.rfind(" at line ") {
        Some(i) => message[..i].to_string(),
        None => message.to_string(),
    }
}

/// Files directly in `dir` ending in `.yml` or `.yaml`, sorted so loading is deterministic.
pub(crate) fn yaml_files(dir: &Path) -> Result<Vec<std::path::PathBuf>> {
    let mut names = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(|e| Error::read(dir, e))? {
        let entry = entry.map_err(|e| Error::read(dir, e))?;
        let name = entry.file_name();
        let is_yaml = matches!(
            Path::new(&name).extension().and_then(|e| e.to_str()),
            Some("yml" | "yaml")
        );
        if !is_yaml {
            continue;
        }
        // The directory entry's type needs no `stat`; only a symlink is followed to its target.
        let is_file = match entry.file_type() {
            Ok(t) if t.is_symlink() => entry.path().is_file(),
            Ok(t) => t.is_file(),
            Err(_) => entry.path().is_file(),
        };
        if is_file {
            names.push(name);
        }
    }
    // All in one directory: sorting the names orders the paths as comparing the paths would.
    names.sort_unstable();
    Ok(names.into_iter().map(|name| dir.join(name)).collect())
}

/// The values of `keys` in a YAML document, read without `serde_yaml` when the document keeps to
/// a plain subset: a block mapping of `word: value` lines whose values are one-line scalars,
/// `|`/`>` block scalars, or nested block mappings and sequences of one-line scalars; ASCII
/// only, no tabs, no trailing spaces, no anchors, tags, flow collections or comments after
/// values. That is the shape of GitLab's db/docs files, and every such text is valid YAML, so
/// nothing is accepted that `serde_yaml` would refuse.
///
/// Returns `None` whenever the text steps outside the subset, or a wanted key's value is not a
/// plain or single-quoted one-line scalar (or is null): the caller then parses with `serde_yaml`,
/// which gives the same values or the error with its line. A `Some` holds each wanted key's
/// string value exactly as `serde_yaml` would give it, or `None` where the key is absent.
pub(crate) fn scan_simple_mapping<'t, const N: usize>(
    text: &'t str,
    keys: [&str; N],
) -> Option<[Option<&'t str>; N]> {
    if !text
        .bytes()
        .all(|b| b == b'\n' || (b' '..=b'~').contains(&b))
    {
        return None;
    }
    let lines: Vec<&str> = text.split('\n').collect();
    if lines.iter().any(|l| l.ends_with(' ')) {
        return None;
    }
    let mut found = [None; N];
    let mut seen: Vec<&str> = Vec::with_capacity(16);
    let mut i = usize::from(lines[0] == "---");
    while i < lines.len() {
        let line = lines[i];
        i += 1;
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (key, rest) = key_value(line)?;
        if seen.contains(&key) {
            return None;
        }
        seen.push(key);
        let wanted = keys.iter().position(|k| *k == key);
        if rest.is_empty() {
            // Null, or a nested collection on the following lines: not a string either way.
            if wanted.is_some() {
                return None;
            }
            let end = lines[i..]
                .iter()
                .position(|l| !(l.starts_with(' ') || l.starts_with('-')))
                .map_or(lines.len(), |p| i + p);
            if end > i {
                let mut j = i;
                block(&lines[..end], &mut j, indent_of(lines[i]), 0)?;
                if j != end {
                    return None;
                }
                i = end;
            }
        } else if matches!(rest, "|" | "|-" | "|+" | ">" | ">-" | ">+") {
            if wanted.is_some() {
                return None;
            }
            i = block_scalar(&lines, i)?;
        } else {
            let value = scalar(rest)?;
            if let Some(k) = wanted {
                found[k] = Some(value?);
            }
        }
    }
    if seen.is_empty() {
        return None;
    }
    Some(found)
}

fn indent_of(line: &str) -> usize {
    line.len() - line.trim_start_matches(' ').len()
}

/// `word:` or `word: value` (value with its leading spaces removed); a word is ASCII letters,
/// digits and `_`, not starting with a digit.
fn key_value(line: &str) -> Option<(&str, &str)> {
    let bytes = line.as_bytes();
    if !bytes
        .first()
        .is_some_and(|b| b.is_ascii_alphabetic() || *b == b'_')
    {
        return None;
    }
    let n = bytes
        .iter()
        .position(|b| !(b.is_ascii_alphanumeric() || *b == b'_'))
        .unwrap_or(bytes.len());
    // libyaml refuses implicit keys over 1024 characters; stay far below.
    if n > 128 {
        return None;
    }
    let rest = line[n..].strip_prefix(':')?;
    if rest.is_empty() {
        return Some((&line[..n], rest));
    }
    Some((&line[..n], rest.strip_prefix(' ')?.trim_start_matches(' ')))
}

/// A one-line scalar of the subset: `Some(Some(text))` when its string value is `text`,
/// `Some(None)` when it is valid but not a string we hand out as is, `None` outside the subset.
#[allow(clippy::option_option)] // the three answers above, each handled differently by the caller
fn scalar(value: &str) -> Option<Option<&str>> {
    match *value.as_bytes().first()? {
        b'\'' => {
            let inner = value[1..].strip_suffix('\'')?;
            (!inner.contains('\'')).then_some(Some(inner))
        }
        b'"' => {
            let bytes = &value.as_bytes()[1..];
            let mut k = 0;
            while k < bytes.len() {
                match bytes[k] {
                    b'\\' => match bytes.get(k + 1)? {
                        b'"' | b'\\' | b'n' | b't' | b'r' => k += 2,
                        _ => return None,
                    },
                    b'"' => return (k + 1 == bytes.len()).then_some(None),
                    _ => k += 1,
                }
            }
            None
        }
        b'-' | b'?' | b':' | b',' | b'[' | b']' | b'{' | b'}' | b'#' | b'&' | b'*' | b'!'
        | b'|' | b'>' | b'%' | b'@' | b'`' | b'~' => None,
        _ if value.contains('#') || value.contains(": ") || value.ends_with(':') => None,
        _ if matches!(value, "null" | "Null" | "NULL") => Some(None),
        _ => Some(Some(value)),
    }
}

/// A block node at `indent` starting at `lines[*i]`; leaves `*i` after its last line.
fn block(lines: &[&str], i: &mut usize, indent: usize, depth: usize) -> Option<()> {
    if depth > 16 || indent_of(lines[*i]) != indent {
        return None;
    }
    if lines[*i][indent..].starts_with("- ") {
        return sequence(lines, i, indent);
    }
    let mut seen: Vec<&str> = Vec::new();
    while *i < lines.len() {
        let line = lines[*i];
        let n = indent_of(line);
        if n < indent {
            break;
        }
        if n > indent {
            return None;
        }
        let (key, rest) = key_value(&line[n..])?;
        if seen.contains(&key) {
            return None;
        }
        seen.push(key);
        *i += 1;
        if !rest.is_empty() {
            scalar(rest)?;
        } else if let Some(next) = lines.get(*i) {
            let m = indent_of(next);
            if m > indent || (m == indent && next[m..].starts_with("- ")) {
                block(lines, i, m, depth + 1)?;
            }
        }
    }
    Some(())
}

/// `- scalar` lines at `indent`; stops at the first line at `indent` that is not an entry.
fn sequence(lines: &[&str], i: &mut usize, indent: usize) -> Option<()> {
    while *i < lines.len() {
        let line = lines[*i];
        let n = indent_of(line);
        if n < indent {
            break;
        }
        if n > indent {
            return None;
        }
        let Some(item) = line[n..].strip_prefix("- ") else {
            break;
        };
        scalar(item.trim_start_matches(' '))?;
        *i += 1;
    }
    Some(())
}

/// The lines of a `|` or `>` block scalar starting at `lines[i]`: empty lines, or lines indented
/// at least as far as the first non-empty one. Returns the index of the first line after it.
fn block_scalar(lines: &[&str], mut i: usize) -> Option<usize> {
    let mut indent = 0;
    while i < lines.len() {
        let line = lines[i];
        if !line.is_empty() {
            let n = indent_of(line);
            if n == 0 {
                break;
            }
            if indent == 0 {
                indent = n;
            } else if n < indent {
                return None;
            }
        }
        i += 1;
    }
    Some(i)
}

#[cfg(test)]
mod tests {
    use super::scan_simple_mapping;
    use proptest::prelude::*;

    #[derive(serde::Deserialize, Debug)]
    struct Keys {
        table_name: Option<String>,
        view_name: Option<String>,
        gitlab_schema: Option<String>,
    }

    const KEYS: [&str; 3] = ["table_name", "view_name", "gitlab_schema"];

    /// The scanner's one promise: whenever it answers, `serde_yaml` gives the same values.
    fn agrees_with_serde_yaml(text: &str) -> bool {
        let Some(fast) = scan_simple_mapping(text, KEYS) else {
            return false;
        };
        match serde_yaml::from_str::<Option<Keys>>(text) {
            Ok(Some(k)) => assert_eq!(
                [
                    k.table_name.as_deref(),
                    k.view_name.as_deref(),
                    k.gitlab_schema.as_deref()
                ],
                fast,
                "values differ for {text:?}"
            ),
            other => panic!("scanner accepted {text:?}, serde_yaml says {other:?}"),
        }
        true
    }

    #[test]
    fn reads_gitlab_db_docs_files_and_agrees_with_serde_yaml() {
        let text = "---\ntable_name: ci_builds_metadata\nclasses:\n- Ci::BuildMetadata\n\
                    feature_categories:\n- continuous_integration\ndescription: |\n  Stores \
                    metadata: about builds.\n\n  # not a comment\nintroduced_by_url: \
                    https://gitlab.com/gitlab-org/gitlab/-/merge_requests/12345\nmilestone: \
                    '11.7'\ngitlab_schema: gitlab_ci\nsharding_key:\n  project_id: projects\n\
                    desired_sharding_key:\n  project_id:\n    references: projects\n    \
                    backfill_via:\n      parent:\n        table: p_ci_builds\n  list:\n  - a\n  \
                    - \"b \\\"c\\\"\"\ntable_size: small\n";
        assert!(agrees_with_serde_yaml(text));
        let values = scan_simple_mapping(text, KEYS).unwrap();
        assert_eq!(
            values,
            [Some("ci_builds_metadata"), None, Some("gitlab_ci")]
        );
    }

    #[test]
    fn leaves_everything_unusual_to_serde_yaml() {
        for text in [
            "",
            "---",
            "table_name: null",
            "table_name: ~",
            "table_name:",
            "table_name: x\ntable_name: y",
            "table_name: a: b",
            "table_name: foo:",
            "a: - 5",
            "a: [b",
            "a: %x",
            "a: x\n  y",
            "a: |\n    x\n  y\nb: 1",
            "a: \"x\\qy\"",
            "a: &x y\nb: *x",
            "- a",
            "a",
            "---\na: 1\n---\nb: 2",
            "a:\n  b: c\n d: e",
            "a:\n  b: c\n   d: e",
            "\ta: x",
            "a: \"b\"c",
            "a: 'b' c",
            "a: x\n \nb: y",
            "table_name: t\u{e9}",
            "table_name: t\r\n",
            "a: b\n- c",
        ] {
            assert!(
                scan_simple_mapping(text, KEYS).is_none(),
                "scanner should decline {text:?}"
            );
        }
    }

    /// A small xorshift generator: documents are built imperatively from one seed. An `odd`
    /// document may step outside the scanner's subset anywhere; the others stay inside it.
    struct Gen {
        state: u64,
        odd: bool,
    }

    impl Gen {
        fn below(&mut self, n: usize) -> usize {
            self.state ^= self.state << 13;
            self.state ^= self.state >> 7;
            self.state ^= self.state << 17;
            usize::try_from(self.state % n as u64).expect("below n, a usize")
        }

        fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
            items[self.below(items.len())]
        }

        /// Picks from `items`, or with an odd document now and then from `odd`.
        fn pick_odd<'a>(&mut self, items: &[&'a str], odd: &[&'a str]) -> &'a str {
            if self.odd && self.below(8) == 0 {
                self.pick(odd)
            } else {
                self.pick(items)
            }
        }

        fn scalar(&mut self) -> &'static str {
            self.pick_odd(SCALARS, ODD_SCALARS)
        }
    }

    const WANTED: &[&str] = &["table_name", "view_name", "gitlab_schema"];
    const WORDS: &[&str] = &["classes", "description", "a", "b_1", "_"];
    const ODD_WORDS: &[&str] = &["key with space", "1key", "-x", "? x", "null", "table_name"];
    const SCALARS: &[&str] = &[
        "gitlab_main",
        "ci_builds",
        "a:b",
        "'q'",
        "''",
        "\"a\\\"b\"",
        "123",
        "Ci::Build",
        "https://gitlab.com/x",
        "Stores rows, for a while",
        "x]",
        "'12.1'",
    ];
    const ODD_SCALARS: &[&str] = &[
        "x: y",
        "x:",
        "'it''s'",
        "\"a\\qb\"",
        "\"open",
        "'open",
        "~",
        "[a, b]",
        "{a: b}",
        "&a x",
        "*a",
        "!foo x",
        "- x",
        "-",
        "x #c",
        "x#c",
        "t\u{e9}",
        "a\tb",
        "x ",
        "%x",
        "@x",
        "`x",
        "|",
        ">",
        "",
        "null",
        "Null",
    ];

    /// Half the documents inside the scanner's subset, half with odd parts and random edits, so
    /// both sides of its boundary are exercised.
    fn document(seed: u64) -> String {
        let mut g = Gen {
            state: seed | 1,
            odd: seed.is_multiple_of(2),
        };
        let mut out = String::new();
        if g.below(2) == 0 {
            out.push_str("---\n");
        }
        let mut wanted: Vec<&str> = WANTED.to_vec();
        for i in 0..=g.below(9) {
            if !wanted.is_empty() && g.below(3) == 0 {
                let key = wanted.swap_remove(g.below(wanted.len()));
                out.push_str(&format!("{key}: {}\n", g.scalar()));
                continue;
            }
            let key = format!("{}{i}", g.pick_odd(WORDS, ODD_WORDS));
            match g.below(9) {
                0..=3 => out.push_str(&format!("{key}: {}\n", g.scalar())),
                4 => {
                    let style = g.pick_odd(&["|", "|-", ">", ">-", "|+"], &["|2", "| #c", "|x"]);
                    out.push_str(&format!("{key}: {style}\n"));
                    let indent = g.below(4) + 1;
                    for _ in 0..g.below(4) {
                        let extra = if g.below(5) == 0 { g.below(3) } else { 0 };
                        let text = if g.below(6) == 0 { "" } else { g.scalar() };
                        let less = usize::from(g.odd && g.below(8) == 0);
                        let pad = " ".repeat((indent + extra).saturating_sub(less));
                        out.push_str(&format!("{pad}{text}\n"));
                    }
                }
                5..=7 => {
                    out.push_str(&format!("{key}:\n"));
                    let indent = if g.below(3) == 0 { 0 } else { 2 };
                    nested(&mut g, &mut out, indent, 0);
                }
                _ => {
                    out.push_str(g.pick_odd(&["", "# c"], &["  # c", "...", "---", "-", "  x"]));
                    out.push('\n');
                }
            }
        }
        let mut chars: Vec<char> = out.chars().collect();
        for _ in 0..if g.odd { g.below(3) } else { 0 } {
            let at = g.below(chars.len() + 1);
            let c = [
                ':', ' ', '-', '#', '\'', '"', '\t', '\n', '|', '\u{e9}', '\r', '[', '&',
            ][g.below(13)];
            match g.below(3) {
                0 => chars.insert(at, c),
                1 if at < chars.len() => {
                    chars.remove(at);
                }
                _ if at < chars.len() => chars[at] = c,
                _ => {}
            }
        }
        chars.into_iter().collect()
    }

    fn nested(g: &mut Gen, out: &mut String, indent: usize, depth: usize) {
        let sequence = indent == 0 || g.below(3) == 0;
        for i in 0..=g.below(4) {
            let pad = " ".repeat(indent + usize::from(g.odd && g.below(12) == 0));
            let key = format!("{}{i}", g.pick_odd(WORDS, ODD_WORDS));
            if sequence {
                out.push_str(&format!("{pad}- {}\n", g.scalar()));
            } else if depth < 3 && g.below(3) == 0 {
                out.push_str(&format!("{pad}{key}:\n"));
                let child = if g.below(4) == 0 { indent } else { indent + 2 };
                nested(g, out, child, depth + 1);
            } else {
                out.push_str(&format!("{pad}{key}: {}\n", g.scalar()));
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig {
            cases: std::env::var("PROPTEST_CASES").ok().and_then(|c| c.parse().ok()).unwrap_or(4096),
            failure_persistence: None,
            ..ProptestConfig::default()
        })]

        #[test]
        fn whenever_the_scanner_answers_serde_yaml_agrees(seed in any::<u64>()) {
            agrees_with_serde_yaml(&document(seed));
        }
    }

    #[test]
    fn the_generated_documents_cross_the_scanners_boundary() {
        let accepted = (1..2000u64)
            .filter(|seed| {
                agrees_with_serde_yaml(&document(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15)))
            })
            .count();
        assert!(
            (200..1800).contains(&accepted),
            "{accepted} of 2000 accepted"
        );
    }
}
