//! A statement's shape without the parser: its text with each plain numeric and string constant
//! replaced by a marker, for the texts ActiveRecord writes (keys and values as literals). Two
//! texts of one shape differ only in the values of constants PostgreSQL's scanner reads as
//! integer or string constants, so no table and no verdict can differ between them (what
//! `libpg_query`'s normalize guarantees, at a tenth of its cost, which was most of a new text's).
//!
//! The scanner is conservative: it gives up (`None`, the caller normalizes with `libpg_query`)
//! at anything whose extent it would have to guess: an escape string or other prefixed string
//! (`E'..'`, `B'..'`, `U&'..'`), a backslash inside a string, a dollar-quoted string, an
//! unterminated string, quoted identifier or comment. Digits touching a letter, an underscore,
//! a `$` or a `.` (`1.5`, `1e5`, `0x1F`, `1_000`, `t1`) stay as they are, as do comments,
//! quoted identifiers, parameters (`$1`) and everything else.

/// Stands for an integer constant; no SQL text contains NUL, so no text can spell it.
const NUMBER: char = '\0';
/// Stands for a string constant.
const STRING: char = '\u{1}';

/// The shape of `sql`, or `None` where only the parser can tell.
pub(crate) fn of(sql: &str) -> Option<String> {
    let bytes = sql.as_bytes();
    let mut shape = String::with_capacity(sql.len());
    // Start of the text not yet copied into `shape`.
    let mut copied = 0;
    let mut i = 0;
    while i < bytes.len() {
        let c = bytes[i];
        match c {
            // The markers themselves: a text holding one could take another's shape.
            0 | 1 => return None,
            b'\'' => {
                if i > 0 && (word_byte(bytes[i - 1]) || bytes[i - 1] == b'&') {
                    return None;
                }
                let end = string_end(bytes, i)?;
                shape.push_str(&sql[copied..i]);
                shape.push(STRING);
                i = end;
                copied = i;
            }
            b'"' => i = quoted_end(bytes, i)?,
            b'-' if bytes.get(i + 1) == Some(&b'-') => {
                i = bytes[i..]
                    .iter()
                    .position(|&b| b == b'\n')
                    .map_or(bytes.len(), |n| i + n + 1);
            }
            b'/' if bytes.get(i + 1) == Some(&b'*') => i = block_comment_end(bytes, i)?,
            b'$' => {
                // `$n`, a parameter; anything else is a dollar quote (or part of a word, which
                // the word's own branch takes).
                let digits = run(bytes, i + 1, |b| b.is_ascii_digit());
                if digits == i + 1 {
                    return None;
                }
                i = digits;
            }
            b'0'..=b'9' => {
                let end = run(bytes, i, |b| b.is_ascii_digit());
                let touches = |b: u8| word_byte(b) || b == b'.';
                let before = i > 0 && touches(bytes[i - 1]);
                let after = bytes.get(end).is_some_and(|&b| touches(b));
                if before || after {
                    // Part of something else: copy it through the end of that something.
                    i = run(bytes, end, touches);
                } else {
                    shape.push_str(&sql[copied..i]);
                    shape.push(NUMBER);
                    i = end;
                    copied = i;
                }
            }
            _ if word_start(c) => i = run(bytes, i, word_byte),
            _ => i += 1,
        }
    }
    shape.push_str(&sql[copied..]);
    Some(shape)
}

/// A byte that may start an unquoted identifier or keyword (bytes of non-ASCII letters included,
/// as PostgreSQL's scanner takes them).
fn word_start(b: u8) -> bool {
    b.is_ascii_alphabetic() || b == b'_' || b >= 0x80
}

/// A byte that may continue one.
fn word_byte(b: u8) -> bool {
    word_start(b) || b.is_ascii_digit() || b == b'$'
}

/// The first index from `from` whose byte is not `keep`.
fn run(bytes: &[u8], from: usize, keep: impl Fn(u8) -> bool) -> usize {
    bytes[from..]
        .iter()
        .position(|&b| !keep(b))
        .map_or(bytes.len(), |n| from + n)
}

/// Past the closing quote of the string opening at `open` (`''` is a quote inside it); `None`
/// for a backslash (an escape, were `standard_conforming_strings` off) or no end.
fn string_end(bytes: &[u8], open: usize) -> Option<usize> {
    let mut i = open + 1;
    loop {
        match bytes.get(i)? {
            b'\\' => return None,
            b'\'' if bytes.get(i + 1) == Some(&b'\'') => i += 2,
            b'\'' => return Some(i + 1),
            _ => i += 1,
        }
    }
}

/// Past the closing quote of the quoted identifier opening at `open` (`""` inside it).
fn quoted_end(bytes: &[u8], open: usize) -> Option<usize> {
    let mut i = open + 1;
    loop {
        match bytes.get(i)? {
            b'"' if bytes.get(i + 1) == Some(&b'"') => i += 2,
            b'"' => return Some(i + 1),
            _ => i += 1,
        }
    }
}

/// Past the end of the block comment opening at `open`; they nest, as in PostgreSQL.
fn block_comment_end(bytes: &[u8], open: usize) -> Option<usize> {
    let mut depth = 0usize;
    let mut i = open;
    while i + 1 < bytes.len() {
        match (bytes[i], bytes[i + 1]) {
            (b'/', b'*') => {
                depth += 1;
                i += 2;
            }
            (b'*', b'/') => {
                depth -= 1;
                i += 2;
                if depth == 0 {
                    return Some(i);
                }
            }
            _ => i += 1,
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shape(sql: &str) -> String {
        of(sql)
            .expect("a shape")
            .replace(NUMBER, "#")
            .replace(STRING, "'?'")
    }

    #[test]
    fn integer_and_string_constants_become_markers() {
        assert_eq!(
            shape(r#"UPDATE "issues" SET s = 'done' WHERE "issues"."id" BETWEEN 1 AND 1000"#),
            r#"UPDATE "issues" SET s = '?' WHERE "issues"."id" BETWEEN # AND #"#
        );
        assert_eq!(
            shape("SELECT -7, 'it''s', x IN (1,2)"),
            "SELECT -#, '?', x IN (#,#)"
        );
    }

    #[test]
    fn digits_inside_words_names_comments_and_parameters_stay() {
        for sql in [
            "SELECT t1.c2 FROM t1",
            r#"SELECT "col 1" FROM "t 2""#,
            "SELECT a$1 FROM t WHERE id = $1",
            "SELECT 1.5, 1e5, .5, 5., 0x1F, 1_000",
            "SELECT x /* 1 /* 2 */ 3 */ -- 4\n",
        ] {
            assert_eq!(of(sql).as_deref(), Some(sql), "{sql}");
        }
        assert_eq!(
            shape("SELECT x /* 1 /* 2 */ 3 */ -- 4\nFROM t WHERE id = 5"),
            "SELECT x /* 1 /* 2 */ 3 */ -- 4\nFROM t WHERE id = #"
        );
        assert_eq!(shape("SELECT 1.5, 1e5"), "SELECT 1.5, 1e5");
    }

    #[test]
    fn texts_only_the_parser_can_read_have_no_shape() {
        for sql in [
            "SELECT E'a\\'b'",
            "SELECT B'101'",
            "SELECT U&'d\\0061t'",
            "SELECT 'a\\'",
            "SELECT $$x$$",
            "SELECT $tag$x$tag$",
            "SELECT 'unterminated",
            r#"SELECT "unterminated"#,
            "SELECT 1 /* unterminated",
            "SELECT \0 FROM t",
            "SELECT \u{1} FROM t",
        ] {
            assert_eq!(of(sql), None, "{sql}");
        }
    }

    #[test]
    fn texts_that_differ_beyond_constants_differ_in_shape() {
        assert_ne!(of("SELECT 1 FROM a"), of("SELECT 1 FROM b"));
        assert_ne!(of("SELECT '1'"), of("SELECT 1"));
        assert_ne!(of(r#"SELECT "1""#), of(r#"SELECT "2""#));
        assert_eq!(of("SELECT 1 FROM a"), of("SELECT 22 FROM a"));
    }
}
