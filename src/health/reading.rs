//! The one statement every built-in indicator reads.

/// `$1`: the migration. On a standby (no WAL position of its own) the WAL columns are NULL.
/// The archive backlog is counted from `pg_stat_archiver`'s last archived segment to the current
/// one, as GitLab's `WriteAheadLog` indicator does without superuser rights; NULL while archiving
/// is off or nothing was archived yet.
pub const READ: &str = r#"
SELECT m.table_name,
       v.pid, v.phase, v.autovacuum,
       r.application_name, r.lag_bytes, r.lag_seconds,
       CASE WHEN pg_is_in_recovery() THEN NULL
            ELSE pg_wal_lsn_diff(pg_current_wal_lsn(), '0/0')::float8 END,
       extract(epoch FROM clock_timestamp())::float8,
       w.backlog, w.last_archived_wal, w.last_failed_wal,
       x.pid, x.age, x.state,
       q.application_name, q.unwritten
FROM batched_background_migrations m
LEFT JOIN LATERAL (
    SELECT p.pid, p.phase, a.backend_type = 'autovacuum worker' AS autovacuum
    FROM pg_stat_progress_vacuum p LEFT JOIN pg_stat_activity a ON a.pid = p.pid
    WHERE p.relid = to_regclass(m.table_name)
    LIMIT 1
) v ON true
LEFT JOIN LATERAL (
    SELECT s.application_name,
           CASE WHEN pg_is_in_recovery() THEN NULL
                ELSE pg_wal_lsn_diff(pg_current_wal_lsn(), s.replay_lsn)::bigint END AS lag_bytes,
           extract(epoch FROM s.replay_lag)::float8 AS lag_seconds
    FROM pg_stat_replication s
    ORDER BY s.replay_lsn NULLS FIRST
    LIMIT 1
) r ON true
LEFT JOIN LATERAL (
    SELECT CASE WHEN current_setting('archive_mode') = 'off' OR pg_is_in_recovery()
                     OR a.last_archived_wal IS NULL OR a.last_archived_wal !~ '^[0-9A-F]{24}$' THEN NULL
                ELSE floor(pg_wal_lsn_diff(pg_current_wal_lsn(),
                        (substr(a.last_archived_wal, 9, 8) || '/' ||
                         to_hex(('x' || substr(a.last_archived_wal, 17, 8))::bit(32)::int::bigint * z.size))::pg_lsn)
                     / z.size)::bigint - 1 END AS backlog,
           a.last_archived_wal, a.last_failed_wal
    FROM pg_stat_archiver a,
         (SELECT setting::bigint AS size FROM pg_settings WHERE name = 'wal_segment_size') z
) w ON true
LEFT JOIN LATERAL (
    SELECT t.pid, extract(epoch FROM clock_timestamp() - t.xact_start)::float8 AS age, t.state
    FROM pg_stat_activity t
    WHERE t.pid <> pg_backend_pid() AND t.backend_type = 'client backend'
      AND t.xact_start IS NOT NULL AND (t.backend_xmin IS NOT NULL OR t.backend_xid IS NOT NULL)
    ORDER BY t.xact_start
    LIMIT 1
) x ON true
LEFT JOIN LATERAL (
    SELECT s.application_name, pg_wal_lsn_diff(pg_current_wal_lsn(), s.write_lsn)::bigint AS unwritten
    FROM pg_stat_replication s
    WHERE NOT pg_is_in_recovery()
    ORDER BY s.write_lsn NULLS FIRST
    LIMIT 1
) q ON true
WHERE m.id = $1
"#;

/// One row of [`READ`].
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Reading {
    pub table_name: String,
    /// The vacuum running on the table: its pid, phase, and whether autovacuum runs it.
    pub vacuum: Option<(i32, String, bool)>,
    /// The standby furthest behind: its name, replay lag in bytes and in seconds.
    pub standby: Option<(String, Option<i64>, Option<f64>)>,
    /// The WAL position in bytes (none on a standby) and the server's clock, in seconds.
    pub wal_lsn: Option<f64>,
    pub at: f64,
    /// Completed segments not archived, the last archived and the last failed segment.
    pub archive_backlog: Option<i64>,
    pub last_archived_wal: Option<String>,
    pub last_failed_wal: Option<String>,
    /// The oldest transaction holding back the xmin horizon: pid, age in seconds, state.
    pub oldest_transaction: Option<(i32, f64, Option<String>)>,
    /// The standby whose WAL receiver is furthest behind: its name, and the bytes of WAL the
    /// primary wrote that it has not written (none before it reports a position).
    pub receiver: Option<(String, Option<i64>)>,
}

impl Reading {
    pub fn from_row(row: &postgres::Row) -> Reading {
        let vacuum = row.get::<_, Option<i32>>(1).map(|pid| {
            (
                pid,
                row.get::<_, Option<String>>(2).unwrap_or_default(),
                row.get::<_, Option<bool>>(3).unwrap_or(false),
            )
        });
        let standby = row
            .get::<_, Option<String>>(4)
            .map(|name| (name, row.get(5), row.get(6)));
        let oldest_transaction = row.get::<_, Option<i32>>(12).map(|pid| {
            (
                pid,
                row.get::<_, Option<f64>>(13).unwrap_or(0.0),
                row.get(14),
            )
        });
        let receiver = row
            .get::<_, Option<String>>(15)
            .map(|name| (name, row.get(16)));
        Reading {
            table_name: row.get(0),
            vacuum,
            standby,
            wal_lsn: row.get(7),
            at: row.get::<_, Option<f64>>(8).unwrap_or(0.0),
            archive_backlog: row.get(9),
            last_archived_wal: row.get(10),
            last_failed_wal: row.get(11),
            oldest_transaction,
            receiver,
        }
    }
}
