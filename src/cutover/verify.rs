//! Step 0 (docs/architecture.md section 10): before anything changes, show that the target is a streaming
//! replica of this very source: in recovery, the same `system_identifier` and timeline, and the
//! same identity row. A replica of another primary, a primary, or a copy restored elsewhere is
//! refused with every difference named, and neither side is touched.

use postgres::Client;

use crate::error::{CutoverError, Error, Result};
use crate::store::{identity, Identity};

/// What verify compares on each side.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Seen {
    system_identifier: i64,
    timeline: i64,
    in_recovery: bool,
    identity: Option<Identity>,
}

// A standby's own checkpoint may lag; the timeline it streams is the one it follows.
const SEEN: &str = "SELECT (SELECT system_identifier FROM pg_control_system())::bigint, \
    COALESCE((SELECT received_tli FROM pg_stat_wal_receiver), \
             (SELECT timeline_id FROM pg_control_checkpoint()))::bigint, \
    pg_is_in_recovery()";

fn seen(db: &mut Client) -> Result<Seen> {
    let row = db.query_one(SEEN, &[])?;
    Ok(Seen {
        system_identifier: row.get(0),
        timeline: row.get(1),
        in_recovery: row.get(2),
        identity: identity::read(db)?,
    })
}

fn describe(identity: &Identity) -> String {
    format!(
        "({}, [{}], epoch {})",
        identity.name,
        identity.serves.join(", "),
        identity.epoch
    )
}

/// Refuses unless `target` is a replica of `source` holding the same identity, stamped `source_name`.
pub fn verify(
    source: &mut Client,
    target: &mut Client,
    source_name: &str,
    target_name: &str,
) -> Result<String> {
    let (s, t) = (seen(source)?, seen(target)?);
    let mut differences = Vec::new();
    if s.in_recovery {
        differences.push(
            "the source is in recovery: it is a replica, not the primary to split".to_string(),
        );
    }
    if !t.in_recovery {
        differences.push(
            "the target is not in recovery: it is a primary (or was promoted already), not a \
             streaming replica of the source"
                .to_string(),
        );
    }
    if s.system_identifier != t.system_identifier {
        differences.push(format!(
            "the target's system_identifier is {}, the source's {}: it is not a replica of this source",
            t.system_identifier, s.system_identifier
        ));
    } else if s.timeline != t.timeline {
        differences.push(format!(
            "the target follows timeline {}, the source is on timeline {}",
            t.timeline, s.timeline
        ));
    }
    match (&s.identity, &t.identity) {
        (None, _) => differences.push(
            "the source has no schema_fence identity: install schema_fence on it first".to_string(),
        ),
        (Some(_), None) => differences.push(
            "the target has no schema_fence identity row: it is not a copy of the installed source"
                .to_string(),
        ),
        (Some(si), Some(ti)) => {
            let (si_key, ti_key) = (
                (&si.name, &si.serves, si.epoch),
                (&ti.name, &ti.serves, ti.epoch),
            );
            if si_key != ti_key {
                differences.push(format!(
                    "the target's identity is {}, the source's {}: the target is not (or no longer) \
                     a copy of the source",
                    describe(ti),
                    describe(si)
                ));
            }
            if si.name != source_name {
                differences.push(format!(
                    "the source's identity is stamped {:?}, not the cutover's source {source_name:?}",
                    si.name
                ));
            }
        }
    }
    if !differences.is_empty() {
        return Err(Error::Cutover(CutoverError::CutoverTarget {
            target: target_name.to_string(),
            differences,
        }));
    }
    Ok(format!(
        "the target is a streaming replica of the source (system_identifier {}, timeline {}) with \
         the same identity {}",
        s.system_identifier,
        s.timeline,
        s.identity.as_ref().map(describe).unwrap_or_default()
    ))
}
