//! Statements prepared once per connection: every round trip after the first skips parsing and
//! planning on the server side, which keeps fetch and bookkeeping cheap.

use std::collections::HashMap;

use postgres::types::ToSql;
use postgres::{GenericClient, Row, Statement};

use crate::error::Result;

#[derive(Default)]
pub(crate) struct Statements(HashMap<String, Statement>);

impl Statements {
    pub(crate) fn get(&mut self, tx: &mut impl GenericClient, sql: &str) -> Result<Statement> {
        if let Some(statement) = self.0.get(sql) {
            return Ok(statement.clone());
        }
        let statement = tx.prepare(sql)?;
        self.0.insert(sql.to_string(), statement.clone());
        Ok(statement)
    }

    pub(crate) fn query(
        &mut self,
        tx: &mut impl GenericClient,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Vec<Row>> {
        let statement = self.get(tx, sql)?;
        Ok(tx.query(&statement, params)?)
    }

    pub(crate) fn query_opt(
        &mut self,
        tx: &mut impl GenericClient,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Option<Row>> {
        let statement = self.get(tx, sql)?;
        Ok(tx.query_opt(&statement, params)?)
    }

    pub(crate) fn query_one(
        &mut self,
        tx: &mut impl GenericClient,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Row> {
        let statement = self.get(tx, sql)?;
        Ok(tx.query_one(&statement, params)?)
    }

    pub(crate) fn execute(
        &mut self,
        tx: &mut impl GenericClient,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<u64> {
        let statement = self.get(tx, sql)?;
        Ok(tx.execute(&statement, params)?)
    }

    /// Forgets every statement: they belonged to a connection that is gone.
    pub(crate) fn clear(&mut self) {
        self.0.clear();
    }
}
