//! [`Db`] over the `postgres` crate: text parameters, text results.

use postgres::types::{Format, IsNull, ToSql, Type};
use postgres::GenericClient;

use super::{Db, Row};
use crate::error::{Error, Result};

/// A parameter sent in PostgreSQL's text format, so the server parses it as the type the
/// statement needs (the same as the Ruby `pg` gem does).
#[derive(Debug)]
struct TextParam<'a>(Option<&'a str>);

impl ToSql for TextParam<'_> {
    fn to_sql(
        &self,
        _ty: &Type,
        out: &mut postgres::types::private::BytesMut,
    ) -> std::result::Result<IsNull, Box<dyn std::error::Error + Sync + Send>> {
        match self.0 {
            Some(s) => {
                out.extend_from_slice(s.as_bytes());
                Ok(IsNull::No)
            }
            None => Ok(IsNull::Yes),
        }
    }

    fn accepts(_ty: &Type) -> bool {
        true
    }

    fn encode_format(&self, _ty: &Type) -> Format {
        Format::Text
    }

    postgres::types::to_sql_checked!();
}

impl From<postgres::Error> for Error {
    fn from(e: postgres::Error) -> Self {
        if e.is_closed() || e.as_db_error().is_none() && e.code().is_none() && is_io(&e) {
            return Error::ConnectionLost {
                message: crate::error::describe_pg_error(&e),
            };
        }
        Error::Database {
            message: crate::error::describe_pg_error(&e),
            source: Some(e),
        }
    }
}

/// A parameter type left for the server to infer (OID 0), as a prepared statement would.
fn unspecified() -> Type {
    Type::new(
        "unspecified".into(),
        0,
        postgres::types::Kind::Pseudo,
        "pg_catalog".into(),
    )
}

impl<C: GenericClient> Db for C {
    /// Parse, bind and run in one round trip as the unnamed statement: nothing is prepared on the
    /// session, so it is safe behind a transaction pooler even outside a transaction.
    fn query(&mut self, sql: &str, params: &[Option<&str>]) -> Result<Vec<Row>> {
        let params: Vec<TextParam> = params.iter().map(|p| TextParam(*p)).collect();
        let ty = unspecified();
        let typed: Vec<(&(dyn ToSql + Sync), Type)> = params
            .iter()
            .map(|p| (p as &(dyn ToSql + Sync), ty.clone()))
            .collect();
        let rows = GenericClient::query_typed(self, sql, &typed)?;
        rows.iter()
            .map(|row| (0..row.len()).map(|i| column_text(row, i)).collect())
            .collect()
    }

    fn batch(&mut self, sql: &str) -> Result<()> {
        GenericClient::batch_execute(self, sql)?;
        Ok(())
    }
}

/// A result column as PostgreSQL's text output would spell it (what the Ruby `pg` gem returns),
/// for the types the store's statements return; other types must be cast to text in the SQL.
fn column_text(row: &postgres::Row, i: usize) -> Result<Option<String>> {
    let ty = row.columns()[i].type_().clone();
    let text = match ty {
        Type::BOOL => row
            .try_get::<_, Option<bool>>(i)?
            .map(|b| if b { "t" } else { "f" }.to_string()),
        Type::INT2 => row.try_get::<_, Option<i16>>(i)?.map(|v| v.to_string()),
        Type::INT4 => row.try_get::<_, Option<i32>>(i)?.map(|v| v.to_string()),
        Type::INT8 => row.try_get::<_, Option<i64>>(i)?.map(|v| v.to_string()),
        Type::FLOAT8 => row.try_get::<_, Option<f64>>(i)?.map(|v| v.to_string()),
        _ => row.try_get::<_, Option<String>>(i).map_err(|_| {
            Error::unexpected(format!(
                "column {i} ({}) of type {ty} is not readable as text; cast it with ::text",
                row.columns()[i].name()
            ))
        })?,
    };
    Ok(text)
}

/// An error of the connection itself (I/O), as opposed to one the server reported.
fn is_io(e: &postgres::Error) -> bool {
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        if s.is::<std::io::Error>() {
            return true;
        }
        source = s.source();
    }
    false
}
