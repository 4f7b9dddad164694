//! The statement guard of docs/architecture.md section 9: before a batch's SQL reaches the server it is
//! parsed with PostgreSQL's own parser (`libpg_query`) and every table it reads or writes is
//! resolved through the dictionary. Each must be in the connection's allowed schemas, and each
//! table written must also be in the migration's tag, `gitlab_shared` or `gitlab_internal`.
//!
//! Verdicts are cached by statement text, and by shape: the text with its constants replaced by
//! markers (`shape.rs`, a scanner of the plain integer and string constants ActiveRecord writes;
//! `libpg_query`'s normalize for texts it leaves to the parser). The dictionary, the allowed
//! schemas and the tag are fixed for a guard, and no literal can change which tables a statement
//! touches (only `set_config`'s setting name changes a verdict, and statements calling it are
//! cached by text only), so every statement of one shape gets the same verdict. A text seen
//! before costs one hash lookup; a new text of a known shape one scan of its bytes, not the full
//! parse and walk.

mod error;
pub use error::GuardError;

mod forbidden;
mod net;
mod shape;
mod walk;

use std::collections::hash_map::Entry;
use std::ops::Deref;
use std::sync::{Arc, PoisonError, RwLock};

use rustc_hash::FxHashMap;

use crate::dictionary::Dictionary;
use crate::error::{Error, Result};
use crate::{GITLAB_INTERNAL, GITLAB_SHARED};

pub use walk::Tables;

/// Statement texts whose verdicts a guard keeps, and shapes too (each map at most this many);
/// when one is full it starts again empty (a batch repeats a handful of shapes, so a reset costs
/// a few parses).
pub const CACHE_ENTRIES: usize = 10_000;
/// Bytes of statement text (texts and shapes together) a guard's cache holds at most, so a few
/// huge statements cannot make it large; past this both maps start again empty.
pub const CACHE_BYTES: usize = 16 * 1024 * 1024;
/// Characters of the statement quoted in an error.
pub const STATEMENT_EXCERPT_CHARS: usize = 200;

/// Checks statements against one connection's allowed schemas and one migration's tag.
///
/// `D` is how the guard holds its dictionary: an `Arc<Dictionary>`, a `&Dictionary`, or any
/// other pointer to one.
pub struct Guard<D = Arc<Dictionary>>
where
    D: Deref<Target = Dictionary>,
{
    dictionary: D,
    allowed: Vec<String>,
    tag: String,
    cache: RwLock<Cache>,
}

#[derive(Default)]
struct Cache {
    /// Statement text → analysis.
    texts: FxHashMap<Box<str>, Arc<Analysis>>,
    /// Normalized text (literals as `$n`) → analysis, for analyses that read no literal.
    shapes: FxHashMap<Box<str>, Arc<Analysis>>,
    bytes: usize,
}

impl Cache {
    /// Makes room for `len` more bytes in `which` map, emptying what must go.
    fn room(&mut self, len: usize, shapes: bool) {
        if self.bytes + len > CACHE_BYTES {
            self.texts.clear();
            self.shapes.clear();
            self.bytes = 0;
        }
        let map = if shapes {
            &mut self.shapes
        } else {
            &mut self.texts
        };
        if map.len() >= CACHE_ENTRIES {
            let freed: usize = map.keys().map(|k| k.len()).sum();
            map.clear();
            self.bytes -= freed;
        }
    }

    fn insert(&mut self, key: &str, analysis: &Arc<Analysis>, shapes: bool) {
        if key.len() > CACHE_BYTES {
            return;
        }
        self.room(key.len(), shapes);
        let map = if shapes {
            &mut self.shapes
        } else {
            &mut self.texts
        };
        if let Entry::Vacant(slot) = map.entry(key.into()) {
            slot.insert(Arc::clone(analysis));
            self.bytes += key.len();
        }
    }
}

/// What the guard learned about one statement text.
#[derive(Debug)]
struct Analysis {
    tables: std::result::Result<Tables, String>,
    verdict: Verdict,
    /// The verdict read a literal's value: not to be shared with other texts of its shape.
    reads_literals: bool,
}

#[derive(Debug)]
enum Verdict {
    Allowed,
    Refused {
        table: String,
        table_schema: Option<String>,
        written: bool,
    },
    Unparsable(String),
    /// Not DML: what it is.
    Forbidden(String),
}

impl<D: Deref<Target = Dictionary>> Guard<D> {
    /// `allowed`: the `gitlab_schemas` the connection's database serves; `tag`: the migration's
    /// `gitlab_schema`.
    pub fn new(dictionary: D, allowed: Vec<String>, tag: String) -> Self {
        Guard {
            dictionary,
            allowed,
            tag,
            cache: RwLock::new(Cache::default()),
        }
    }

    pub fn dictionary(&self) -> &Dictionary {
        &self.dictionary
    }

    pub fn allowed(&self) -> &[String] {
        &self.allowed
    }

    pub fn tag(&self) -> &str {
        &self.tag
    }

    /// `Ok` when every statement of `sql` keeps to the rules; otherwise
    /// [`GuardError::CrossDatabaseAccess`] naming the first table that does not (tables written are
    /// checked first), or [`GuardError::GuardParse`] when PostgreSQL's parser rejects the text.
    pub fn check(&self, sql: &str) -> Result<()> {
        let analysis = self.analysis(sql);
        match &analysis.verdict {
            Verdict::Allowed => Ok(()),
            Verdict::Refused {
                table,
                table_schema,
                written,
            } => Err(Error::Guard(GuardError::CrossDatabaseAccess {
                table: table.clone(),
                table_schema: table_schema.clone(),
                written: *written,
                allowed: self.allowed.clone().into(),
                tag: self.tag.clone(),
                statement: excerpt(sql).into(),
            })),
            Verdict::Unparsable(message) => Err(parse_error(message, sql)),
            Verdict::Forbidden(what) => Err(Error::Guard(GuardError::ForbiddenStatement {
                what: what.clone(),
                statement: excerpt(sql),
            })),
        }
    }

    /// The tables `sql` reads and writes (from the cache when it has them).
    pub fn tables(&self, sql: &str) -> Result<Tables> {
        match &self.analysis(sql).tables {
            Ok(tables) => Ok(tables.clone()),
            Err(message) => Err(parse_error(message, sql)),
        }
    }

    /// Statement texts in the cache.
    pub fn cache_len(&self) -> usize {
        self.read_cache().texts.len()
    }

    /// Statement shapes (normalized texts) in the cache.
    pub fn shapes_len(&self) -> usize {
        self.read_cache().shapes.len()
    }

    fn read_cache(&self) -> std::sync::RwLockReadGuard<'_, Cache> {
        self.cache.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn analysis(&self, sql: &str) -> Arc<Analysis> {
        if let Some(hit) = self.read_cache().texts.get(sql) {
            return Arc::clone(hit);
        }
        // Most texts have a shape our scanner reads; the others get libpg_query's. A text the
        // parser rejects has no libpg_query shape, and no verdict under its own: it goes on to
        // the parse, which says why, and is remembered by its text only.
        let shape = shape::of(sql).or_else(|| pg_query::normalize(sql).ok());
        if let Some(shape) = &shape {
            let hit = self.read_cache().shapes.get(shape.as_str()).cloned();
            if let Some(hit) = hit {
                self.remember(sql, None, &hit);
                return hit;
            }
        }
        let analysis = Arc::new(self.analyse(sql));
        let shape = shape.filter(|_| !analysis.reads_literals);
        self.remember(sql, shape.as_deref(), &analysis);
        analysis
    }

    fn analyse(&self, sql: &str) -> Analysis {
        let parsed = parse(sql).map_err(|e| match e {
            Error::Guard(GuardError::GuardParse { message, .. }) => message,
            other => other.to_string(),
        });
        let inspection = parsed
            .as_ref()
            .ok()
            .map(|p| forbidden::inspect(&p.protobuf, sql));
        let reads_literals = inspection.as_ref().is_none_or(|i| i.reads_literals);
        let forbidden = inspection.and_then(|i| i.forbidden);
        let tables = parsed.map(|p| walk::tables(&p.protobuf));
        let verdict = match (&tables, forbidden) {
            (_, Some(what)) => Verdict::Forbidden(what),
            (Ok(tables), None) => self.verdict(tables),
            (Err(message), None) => Verdict::Unparsable(message.clone()),
        };
        Analysis {
            tables,
            verdict,
            reads_literals,
        }
    }

    fn remember(&self, sql: &str, shape: Option<&str>, analysis: &Arc<Analysis>) {
        let mut cache = self.cache.write().unwrap_or_else(PoisonError::into_inner);
        cache.insert(sql, analysis, false);
        if let Some(shape) = shape {
            cache.insert(shape, analysis, true);
        }
    }

    fn verdict(&self, tables: &Tables) -> Verdict {
        for (table, written) in tables.iter() {
            let schema = self.dictionary.table_schema(table);
            let allowed = schema.is_some_and(|s| {
                self.allowed.iter().any(|a| a == s)
                    && (!written || s == self.tag || s == GITLAB_SHARED || s == GITLAB_INTERNAL)
            });
            if !allowed {
                return Verdict::Refused {
                    table: table.to_string(),
                    table_schema: schema.map(str::to_string),
                    written,
                };
            }
        }
        Verdict::Allowed
    }
}

/// The tables `sql` reads and writes, parsed with PostgreSQL's parser; no dictionary needed.
pub fn tables(sql: &str) -> Result<Tables> {
    Ok(walk::tables(&parse(sql)?.protobuf))
}

fn parse(sql: &str) -> Result<pg_query::ParseResult> {
    pg_query::parse(sql, 0).map_err(|e| {
        let message = match e {
            pg_query::Error::Parse(m) => m,
            other => other.to_string(),
        };
        parse_error(&message, sql)
    })
}

fn parse_error(message: &str, sql: &str) -> Error {
    Error::Guard(GuardError::GuardParse {
        message: message.to_string(),
        statement: excerpt(sql),
    })
}

/// At most [`STATEMENT_EXCERPT_CHARS`] characters of `sql`, on one line.
fn excerpt(sql: &str) -> String {
    let flat: String = sql.split_whitespace().collect::<Vec<_>>().join(" ");
    match flat.char_indices().nth(STATEMENT_EXCERPT_CHARS) {
        Some((cut, _)) => format!("{}...", &flat[..cut]),
        None => flat,
    }
}

/// The message of [`GuardError::CrossDatabaseAccess`].
pub(crate) fn refusal_message(
    table: &str,
    table_schema: Option<&str>,
    written: bool,
    allowed: &[String],
    tag: &str,
    statement: &str,
) -> String {
    let serves = allowed.join(", ");
    let access = if written { "writes" } else { "reads" };
    let why = match table_schema {
        None => format!(
            "it {access} table {table:?}, which has no gitlab_schema in the dictionary, so it cannot \
             be proven to belong to this database (which serves {serves}); add the table to the dictionary"
        ),
        Some(schema) if !allowed.iter().any(|a| a == schema) => format!(
            "it {access} table {table:?} of {schema}, but this database serves only {serves} \
             (migration restricted to {tag})"
        ),
        Some(schema) => format!(
            "it writes table {table:?} of {schema}, but the migration is restricted to {tag}, so it \
             may write only {tag}, {GITLAB_SHARED} and {GITLAB_INTERNAL} tables"
        ),
    };
    format!("cross-database access refused, statement not sent: {why}; statement: {statement}")
}
