//! A cutover and a rollback need each server itself, not a transaction pooler in front of it:
//! `pg_promote()` and the recovery checks must reach the replica, the reverse replication's
//! subscription opens a replication connection that PgBouncer cannot carry, and the steps read
//! one server's state across transactions (WAL positions, the slot, the drain) on one session,
//! with statements prepared on it. So a URL that reaches PostgreSQL through a pooler is refused
//! before anything is read or changed.

use postgres::Client;

use crate::connect::Connector;
use crate::error::{CutoverError, Error, Result};

/// Refuses `client` (opened by `connector` for the cutover's `database`, from `address`, its URL
/// without password) when it is behind a pooler: declared by `prepared_statements=false`, or
/// seen as a server port other than the URL's (the connection was forwarded).
pub(super) fn refuse(
    client: &mut Client,
    connector: &Connector,
    database: &str,
    address: &str,
) -> Result<()> {
    let refused = |reason: String| {
        Error::Cutover(CutoverError::CutoverThroughPooler {
            database: database.to_string(),
            url: address.to_string(),
            reason,
        })
    };
    if !connector.prepared_statements() {
        return Err(refused(
            "it says prepared_statements=false, which is how a URL through a transaction pooler is \
             marked"
                .into(),
        ));
    }
    let ports = connector.tcp_ports();
    if ports.is_empty() {
        return Ok(());
    }
    // The simple protocol: nothing is prepared for the probe itself.
    let answered = client.simple_query("SELECT inet_server_port()::text")?;
    let server_port = answered.iter().find_map(|m| match m {
        postgres::SimpleQueryMessage::Row(row) => row.get(0).and_then(|p| p.parse::<u16>().ok()),
        _ => None,
    });
    match server_port {
        Some(port) if !ports.contains(&port) => Err(refused(format!(
            "PostgreSQL answers on port {port} while the URL names port {}: something in between \
             (PgBouncer, a proxy) forwards the connection",
            ports
                .iter()
                .map(u16::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        ))),
        _ => Ok(()),
    }
}
