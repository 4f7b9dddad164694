//! After the split, each database holds tracking rows whose tag it no longer serves (stale rows,
//! left behind by the replication). `cleanup` lists them, and deletes them with their job rows
//! only when asked.

use postgres::GenericClient;

use crate::error::Result;
use crate::store::identity;
use crate::topology::Topology;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StaleRow {
    pub id: i64,
    pub job_class_name: String,
    pub table_name: String,
    pub gitlab_schema: String,
    pub jobs: i64,
}

pub fn cleanup(
    db: &mut impl GenericClient,
    topology: &Topology,
    delete: bool,
) -> Result<Vec<StaleRow>> {
    let mut tx = db.transaction()?;
    let identity = identity::require(&mut tx)?;
    let allowed = topology.allowed_schemas(&identity.serves)?;
    let rows = tx.query(
        "SELECT m.id, m.job_class_name, m.table_name, m.gitlab_schema, \
                (SELECT count(*) FROM batched_background_migration_jobs j WHERE j.batched_background_migration_id = m.id) \
         FROM batched_background_migrations m WHERE NOT (m.gitlab_schema = ANY($1)) ORDER BY m.id \
         FOR UPDATE OF m",
        &[&allowed],
    )?;
    let stale: Vec<StaleRow> = rows
        .iter()
        .map(|r| StaleRow {
            id: r.get(0),
            job_class_name: r.get(1),
            table_name: r.get(2),
            gitlab_schema: r.get(3),
            jobs: r.get(4),
        })
        .collect();
    if delete && !stale.is_empty() {
        let ids: Vec<i64> = stale.iter().map(|s| s.id).collect();
        // Jobs go with their migration (ON DELETE CASCADE).
        tx.execute(
            "DELETE FROM batched_background_migrations WHERE id = ANY($1)",
            &[&ids],
        )?;
    }
    tx.commit()?;
    Ok(stale)
}
