//! Reverse replication (docs/architecture.md section 10): while the moving tables are still fenced, right
//! after the promotion, the target publishes them and the source subscribes, starting at that
//! point without copying data. Every write the new database takes after the split reaches the
//! source, so a rollback after the promotion loses nothing.
//!
//! The source's write locks do not stop the subscription: its apply worker runs with
//! `session_replication_role = replica`, and triggers created with plain `CREATE TRIGGER`
//! (enabled "origin" only) fire neither per row nor per statement there. Application sessions
//! still meet them.
//!
//! A marker table travels with the moving tables: a token written on the target after its fence
//! is visible on the source once everything the target committed before it has been applied
//! (apply is in commit order). That is how the rollback's catch-up knows it is done.

use postgres::{Client, GenericClient};

use super::tables::Relation;
use crate::error::{CutoverError, Error, Result};
use crate::sql::quote_ident;

/// The table whose rows mark how far the reverse replication has applied.
pub const MARKER: &str = "schema_fence_reverse_marker";

const CREATE_MARKER: &str = "CREATE TABLE IF NOT EXISTS schema_fence_reverse_marker \
    (cutover text PRIMARY KEY, token text NOT NULL, written_at timestamptz NOT NULL DEFAULT now())";

/// The publication, slot and subscription names of a cutover (`main->ci` gives
/// `schema_fence_reverse_main_ci`).
pub fn name(cutover: &str) -> String {
    let safe: String = cutover
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '_'
            }
        })
        .collect();
    format!("schema_fence_reverse_{safe}")
}

/// What a reversible cutover needs and is missing, each named. `relations` are the moving tables.
pub fn missing_requirements(
    source: &mut Client,
    target: &mut Client,
    relations: &[Relation],
) -> Result<Vec<String>> {
    let mut missing = Vec::new();
    let setting = |db: &mut Client, name: &str| -> Result<String> {
        Ok(db
            .query_one("SELECT current_setting($1)", &[&name])?
            .get::<_, String>(0))
    };
    if setting(target, "wal_level")? != "logical" {
        missing.push(
            "wal_level = logical on the target (its WAL must carry logical changes back to the \
             source; a restart is needed to change it)"
                .to_string(),
        );
    }
    let counts = [
        (
            "the target",
            "max_replication_slots",
            setting(target, "max_replication_slots")?,
        ),
        (
            "the target",
            "max_wal_senders",
            setting(target, "max_wal_senders")?,
        ),
        (
            "the source",
            "max_logical_replication_workers",
            setting(source, "max_logical_replication_workers")?,
        ),
    ];
    for (what, name, value) in counts {
        let value: i64 = value.parse().unwrap_or(0);
        if value < 1 {
            missing.push(format!("{name} of at least 1 on {what} (it is {value})"));
        }
    }
    for relation in relations {
        // Partitioned parents carry no rows of their own; their partitions are checked.
        if relation.partitioned {
            continue;
        }
        let identity: bool = target
            .query_one(
                "SELECT c.relreplident IN ('f', 'i') OR (c.relreplident = 'd' AND EXISTS \
                     (SELECT 1 FROM pg_index i WHERE i.indrelid = c.oid AND i.indisprimary)) \
                 FROM pg_class c WHERE c.oid = $1::text::regclass",
                &[&relation.name],
            )?
            .get(0);
        if !identity {
            missing.push(format!(
                "a primary key or a replica identity on {} (its updates and deletes cannot be \
                 replicated back otherwise)",
                relation.name
            ));
        }
    }
    Ok(missing)
}

/// Creates the marker table on the source (in the fence's transaction, so that the replica has
/// it at the promotion).
pub fn prepare_source(db: &mut impl GenericClient) -> Result<()> {
    db.batch_execute(CREATE_MARKER)?;
    Ok(())
}

/// After the promotion, before the target takes a write: publishes the moving tables on the
/// target from a new slot, and subscribes the source to it without copying data. Idempotent.
pub fn set_up(
    source: &mut Client,
    target: &mut Client,
    target_url: &str,
    cutover: &str,
    relations: &[Relation],
) -> Result<String> {
    let name = name(cutover);
    let quoted = quote_ident(&name);
    target.batch_execute(CREATE_MARKER)?;
    let published: bool = target
        .query_one(
            "SELECT EXISTS (SELECT 1 FROM pg_publication WHERE pubname = $1)",
            &[&name],
        )?
        .get(0);
    if !published {
        let mut tables: Vec<String> = relations.iter().map(|r| r.name.clone()).collect();
        tables.push(quote_ident(MARKER));
        // A partitioned table is published as its partitions' changes under its own name, so
        // the source applies them whatever its partitions are called.
        target.batch_execute(&format!(
            "CREATE PUBLICATION {quoted} FOR TABLE {} WITH (publish_via_partition_root = true)",
            tables.join(", ")
        ))?;
    }
    let slot: bool = target
        .query_one(
            "SELECT EXISTS (SELECT 1 FROM pg_replication_slots WHERE slot_name = $1)",
            &[&name],
        )?
        .get(0);
    if !slot {
        target.query_one(
            "SELECT pg_create_logical_replication_slot($1, 'pgoutput')",
            &[&name],
        )?;
    }
    let subscribed: bool = source
        .query_one(
            "SELECT EXISTS (SELECT 1 FROM pg_subscription WHERE subname = $1)",
            &[&name],
        )?
        .get(0);
    if !subscribed {
        // CREATE SUBSCRIPTION takes no bind parameters: the connection string is a quoted literal.
        let conninfo = super::lock_writes::literal(&subscription_conninfo(target_url)?);
        source.batch_execute(&format!(
            "CREATE SUBSCRIPTION {quoted} CONNECTION {conninfo} PUBLICATION {quoted} \
             WITH (create_slot = false, slot_name = {slot}, copy_data = false, enabled = true)",
            slot = super::lock_writes::literal(&name),
        ))?;
    }
    Ok(format!(
        "reverse replication of {} tables from the target to the source ({name})",
        relations.len()
    ))
}

/// The target's connection string as the source server's subscription uses it: the core's own
/// key dropped (libpq refuses it) and the core's network defaults where the string sets none, so
/// the source notices a cut target as the core does (docs/faults.md), not after the kernel's
/// connection retries (more than two minutes, found by `tests/replication_faults.rs`).
fn subscription_conninfo(target_url: &str) -> Result<String> {
    use crate::connect::{self, Conninfo};
    let mut info = Conninfo::parse(target_url)?;
    info.take("prepared_statements");
    let defaults = [
        (
            "connect_timeout",
            connect::DEFAULT_CONNECT_TIMEOUT.as_secs(),
        ),
        (
            "keepalives_idle",
            connect::DEFAULT_KEEPALIVES_IDLE.as_secs(),
        ),
        (
            "keepalives_interval",
            connect::DEFAULT_KEEPALIVES_INTERVAL.as_secs(),
        ),
        (
            "keepalives_count",
            u64::from(connect::DEFAULT_KEEPALIVES_RETRIES),
        ),
        // libpq reads milliseconds.
        (
            "tcp_user_timeout",
            u64::try_from(connect::DEFAULT_TCP_USER_TIMEOUT.as_millis()).unwrap_or(u64::MAX),
        ),
    ];
    for (key, value) in defaults {
        if info.get(key).is_none() {
            info.set(key, &value.to_string());
        }
    }
    Ok(info.to_key_values())
}

/// Whether this cutover set up reverse replication (its subscription exists on the source).
pub fn is_set_up(source: &mut Client, cutover: &str) -> Result<bool> {
    Ok(source
        .query_one(
            "SELECT EXISTS (SELECT 1 FROM pg_subscription WHERE subname = $1)",
            &[&name(cutover)],
        )?
        .get(0))
}

/// Writes a fresh marker on the target; returns its token.
pub fn mark(target: &mut Client, cutover: &str) -> Result<String> {
    let row = target.query_one(
        "INSERT INTO schema_fence_reverse_marker (cutover, token) \
         VALUES ($1, md5(random()::text || clock_timestamp()::text)) \
         ON CONFLICT (cutover) DO UPDATE SET token = EXCLUDED.token, written_at = now() \
         RETURNING token",
        &[&cutover],
    )?;
    Ok(row.get(0))
}

/// Whether the source has applied the marker `token`.
pub fn applied(source: &mut Client, cutover: &str, token: &str) -> Result<bool> {
    Ok(source
        .query_one(
            "SELECT EXISTS (SELECT 1 FROM schema_fence_reverse_marker WHERE cutover = $1 AND token = $2)",
            &[&cutover, &token],
        )?
        .get(0))
}

/// The reverse replication's lag: bytes of the target's WAL the source has not confirmed, and
/// seconds since the source last heard from the target. None when there is none.
pub fn lag(
    source: &mut Client,
    target: &mut Client,
    cutover: &str,
) -> Result<Option<(i64, Option<f64>)>> {
    let name = name(cutover);
    let Some(row) = target.query_opt(
        "SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), confirmed_flush_lsn)::bigint \
         FROM pg_replication_slots WHERE slot_name = $1",
        &[&name],
    )?
    else {
        return Ok(None);
    };
    let bytes: Option<i64> = row.get(0);
    let seconds: Option<f64> = source
        .query_opt(
            "SELECT EXTRACT(EPOCH FROM now() - last_msg_receipt_time)::float8 \
             FROM pg_stat_subscription WHERE subname = $1 AND relid IS NULL",
            &[&name],
        )?
        .and_then(|r| r.get(0));
    Ok(Some((bytes.unwrap_or(0), seconds)))
}

/// Drops the subscription, the slot, the publication and the markers. Idempotent.
pub fn tear_down(source: &mut Client, target: &mut Client, cutover: &str) -> Result<String> {
    let name = name(cutover);
    let quoted = quote_ident(&name);
    if is_set_up(source, cutover)? {
        // Detached from its slot first, so dropping it does not need the target.
        // One statement per call: DROP SUBSCRIPTION refuses to run in a transaction block.
        for statement in ["DISABLE", "SET (slot_name = NONE)"] {
            source.batch_execute(&format!("ALTER SUBSCRIPTION {quoted} {statement}"))?;
        }
        source.batch_execute(&format!("DROP SUBSCRIPTION {quoted}"))?;
    }
    // The slot may still be held by the walsender of the subscription just disabled.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let row = target.query_opt(
            "SELECT active FROM pg_replication_slots WHERE slot_name = $1",
            &[&name],
        )?;
        match row.map(|r| r.get::<_, bool>(0)) {
            None => break,
            Some(false) => {
                target.query_one("SELECT pg_drop_replication_slot($1)", &[&name])?;
                break;
            }
            Some(true) if std::time::Instant::now() < deadline => {
                std::thread::sleep(std::time::Duration::from_millis(50));
            }
            Some(true) => {
                return Err(Error::Cutover(CutoverError::CutoverState {
                    message: format!(
                        "the replication slot {name} on the target is still in use after 30s; \
                         end its walsender (pg_terminate_backend) and run the rollback again"
                    ),
                }))
            }
        }
    }
    target.batch_execute(&format!("DROP PUBLICATION IF EXISTS {quoted}"))?;
    target.batch_execute(&format!("DROP TABLE IF EXISTS {MARKER}"))?;
    source.batch_execute(&format!("DROP TABLE IF EXISTS {MARKER}"))?;
    Ok(format!("reverse replication {name} dropped"))
}

/// The reverse replications this database (a source) subscribes to: name, and seconds since it
/// last heard from the target (None before the first message).
pub fn subscriptions(source: &mut impl GenericClient) -> Result<Vec<(String, Option<f64>)>> {
    let rows = source.query(
        "SELECT s.subname::text, EXTRACT(EPOCH FROM now() - st.last_msg_receipt_time)::float8 \
         FROM pg_subscription s \
         LEFT JOIN pg_stat_subscription st ON st.subid = s.oid AND st.relid IS NULL \
         WHERE s.subname LIKE 'schema\\_fence\\_reverse\\_%' AND s.subdbid = \
               (SELECT oid FROM pg_database WHERE datname = current_database()) \
         ORDER BY 1",
        &[],
    )?;
    Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
}

#[cfg(test)]
mod tests {
    use super::subscription_conninfo;
    use crate::connect::Conninfo;

    #[test]
    fn the_subscription_gets_the_cores_network_defaults_and_keeps_the_urls_own() {
        let text = subscription_conninfo(
            "postgres://u@db.example:5433/app?connect_timeout=3&prepared_statements=false",
        )
        .unwrap();
        let info = Conninfo::parse(&text).unwrap();
        assert_eq!(info.get("connect_timeout"), Some("3"));
        assert_eq!(info.get("keepalives_idle"), Some("10"));
        assert_eq!(info.get("keepalives_count"), Some("3"));
        assert_eq!(info.get("tcp_user_timeout"), Some("30000"));
        assert_eq!(info.get("prepared_statements"), None, "libpq refuses it");
        assert_eq!(info.get("host"), Some("db.example"));
        assert_eq!(info.get("dbname"), Some("app"));
    }
}
