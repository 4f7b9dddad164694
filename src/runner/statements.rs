//! How the runner sends its statements. On a session of its own (the default) each statement is
//! prepared once per connection and runs with its generic plan: every round trip after the first
//! skips parsing and planning, which keeps fetch and bookkeeping cheap. Behind a transaction
//! pooler (PgBouncer, `prepared_statements=false`) nothing may outlive a transaction: each
//! statement is parsed, bound and run in one round trip as the unnamed statement (a single Sync,
//! so the pooler cannot split it across server connections), and the settings of the session
//! mode are `SET LOCAL` in each transaction instead.

use std::collections::HashMap;

use postgres::types::{ToSql, Type};
use postgres::{GenericClient, Row, Statement};

use crate::error::Result;

/// A parameter and the PostgreSQL type it is sent as (for the unprepared path, which has no
/// server-side description to learn types from).
pub(crate) trait Param: ToSql + Sync {
    fn pg_type(&self) -> Type;
    fn as_sql(&self) -> &(dyn ToSql + Sync);
}

macro_rules! param {
    ($t:ty, $pg:expr) => {
        impl Param for $t {
            fn pg_type(&self) -> Type {
                $pg
            }
            fn as_sql(&self) -> &(dyn ToSql + Sync) {
                self
            }
        }
    };
}

param!(i16, Type::INT2);
param!(i32, Type::INT4);
param!(i64, Type::INT8);
param!(f64, Type::FLOAT8);
param!(bool, Type::BOOL);
param!(String, Type::TEXT);
param!(&str, Type::TEXT);
param!(Vec<String>, Type::TEXT_ARRAY);
param!(&[String], Type::TEXT_ARRAY);
param!(Option<i64>, Type::INT8);
param!(Option<Vec<i64>>, Type::INT8_ARRAY);

/// Statements a runner keeps prepared on its session at most: its own bookkeeping and one
/// key-range walk per migrated table and column. Past that it starts again empty (each one is
/// prepared again at its next use, and the dropped ones are closed), so a worker serving
/// migrations without end keeps a bounded cache.
pub(crate) const STATEMENT_CACHE_ENTRIES: usize = 256;

pub(crate) struct Statements {
    prepared: bool,
    cache: HashMap<String, Statement>,
}

impl Default for Statements {
    fn default() -> Self {
        Statements::new(true)
    }
}

impl Statements {
    pub(crate) fn new(prepared: bool) -> Statements {
        Statements {
            prepared,
            cache: HashMap::new(),
        }
    }

    /// Whether statements stay prepared on the session.
    pub(crate) fn prepared(&self) -> bool {
        self.prepared
    }

    fn get(&mut self, tx: &mut impl GenericClient, sql: &str) -> Result<Statement> {
        if let Some(statement) = self.cache.get(sql) {
            return Ok(statement.clone());
        }
        let statement = tx.prepare(sql)?;
        if self.cache.len() >= STATEMENT_CACHE_ENTRIES {
            self.cache.clear();
        }
        self.cache.insert(sql.to_string(), statement.clone());
        Ok(statement)
    }

    pub(crate) fn query(
        &mut self,
        tx: &mut impl GenericClient,
        sql: &str,
        params: &[&dyn Param],
    ) -> Result<Vec<Row>> {
        if !self.prepared {
            let typed: Vec<(&(dyn ToSql + Sync), Type)> =
                params.iter().map(|p| (p.as_sql(), p.pg_type())).collect();
            return Ok(tx.query_typed(sql, &typed)?);
        }
        let statement = self.get(tx, sql)?;
        let untyped: Vec<&(dyn ToSql + Sync)> = params.iter().map(|p| p.as_sql()).collect();
        Ok(tx.query(&statement, &untyped)?)
    }

    pub(crate) fn query_opt(
        &mut self,
        tx: &mut impl GenericClient,
        sql: &str,
        params: &[&dyn Param],
    ) -> Result<Option<Row>> {
        let mut rows = self.query(tx, sql, params)?;
        match rows.len() {
            0 => Ok(None),
            1 => Ok(rows.pop()),
            n => Err(crate::error::Error::unexpected(format!(
                "expected at most one row, got {n}"
            ))),
        }
    }

    pub(crate) fn query_one(
        &mut self,
        tx: &mut impl GenericClient,
        sql: &str,
        params: &[&dyn Param],
    ) -> Result<Row> {
        self.query_opt(tx, sql, params)?
            .ok_or_else(|| crate::error::Error::unexpected("expected one row, got none"))
    }

    pub(crate) fn execute(
        &mut self,
        tx: &mut impl GenericClient,
        sql: &str,
        params: &[&dyn Param],
    ) -> Result<u64> {
        if !self.prepared {
            let typed: Vec<(&(dyn ToSql + Sync), Type)> =
                params.iter().map(|p| (p.as_sql(), p.pg_type())).collect();
            return Ok(tx.execute_typed(sql, &typed)?);
        }
        let statement = self.get(tx, sql)?;
        let untyped: Vec<&(dyn ToSql + Sync)> = params.iter().map(|p| p.as_sql()).collect();
        Ok(tx.execute(&statement, &untyped)?)
    }

    /// Forgets every statement: they belonged to a connection that is gone.
    pub(crate) fn clear(&mut self) {
        self.cache.clear();
    }
}
