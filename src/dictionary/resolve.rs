//! GitLab's `table_schema` rules, in the order of docs/architecture.md section 4, with the fix that an exact
//! match is tried before a partition suffix is stripped.

use super::{Dictionary, SchemaId};

/// Which rule of docs/architecture.md section 4 gave a name its `gitlab_schema`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rule {
    /// `information_schema.*` and `pg_*` (rule 2).
    Internal,
    /// The name is a table or view of the dictionary (rule 3).
    Exact,
    /// The name without its `_<digits>` partition suffix is (rule 4).
    PartitionSuffix,
    /// `ci_*` whose partitioned parent `p_ci_*` is (rule 5).
    PartitionedParent,
    /// A deleted table or view (rule 6).
    Deleted,
    /// `_test_gitlab_<schema>_*` (rule 7).
    TestSchemaPrefix,
    /// Any other `_test_*` (rule 7).
    TestShared,
}

impl Rule {
    pub fn name(self) -> &'static str {
        match self {
            Rule::Internal => "internal",
            Rule::Exact => "exact",
            Rule::PartitionSuffix => "partition_suffix",
            Rule::PartitionedParent => "partitioned_parent",
            Rule::Deleted => "deleted",
            Rule::TestSchemaPrefix => "test_schema_prefix",
            Rule::TestShared => "test_shared",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Resolution {
    pub schema: SchemaId,
    pub rule: Rule,
}

/// The PostgreSQL schemas of GitLab's tables: `public` and the partition schemas.
pub const OWN_SCHEMAS: &[&str] = &[
    "public",
    "gitlab_partitions_dynamic",
    "gitlab_partitions_static",
];

impl Dictionary {
    pub fn resolve(&self, name: &str) -> Option<Resolution> {
        let (pg_schema, table) = match name.split_once('.') {
            Some((schema, table)) => (Some(schema), table),
            None => (None, name),
        };
        let found = |schema, rule| Some(Resolution { schema, rule });

        if pg_schema.is_some_and(|s| s == "information_schema" || s.starts_with("pg_"))
            || table.starts_with("pg_")
        {
            return found(self.internal, Rule::Internal);
        }
        // A name in another PostgreSQL schema (a view shadowing a table, say) is not the table of
        // `public` with that name: it resolves only as the dictionary names it, schema and all.
        if pg_schema.is_some_and(|s| !OWN_SCHEMAS.contains(&s)) {
            return self
                .tables
                .get(name)
                .and_then(|e| found(e.schema, Rule::Exact));
        }
        if let Some(e) = self.tables.get(table) {
            return found(e.schema, Rule::Exact);
        }
        let stripped = strip_partition_suffix(table);
        if let Some(e) = stripped.and_then(|s| self.tables.get(s)) {
            return found(e.schema, Rule::PartitionSuffix);
        }
        if table.starts_with("ci_") {
            for candidate in [Some(table), stripped].into_iter().flatten() {
                if let Some(schema) = self.partitioned_parent(candidate) {
                    return found(schema, Rule::PartitionedParent);
                }
            }
        }
        for candidate in [Some(table), stripped].into_iter().flatten() {
            if let Some(e) = self.deleted.get(candidate) {
                return found(e.schema, Rule::Deleted);
            }
        }
        if let Some(rest) = table.strip_prefix("_test_") {
            return match self.test_schema(rest) {
                Some(schema) => found(schema, Rule::TestSchemaPrefix),
                None => found(self.shared, Rule::TestShared),
            };
        }
        None
    }

    fn partitioned_parent(&self, table: &str) -> Option<SchemaId> {
        // Short names only: a stack buffer keeps the hot path free of allocation.
        let mut buf = [0u8; 128];
        let len = table.len() + 2;
        if len > buf.len() {
            return self
                .tables
                .get(format!("p_{table}").as_str())
                .map(|e| e.schema);
        }
        buf[..2].copy_from_slice(b"p_");
        buf[2..len].copy_from_slice(table.as_bytes());
        let parent = std::str::from_utf8(&buf[..len]).ok()?;
        self.tables.get(parent).map(|e| e.schema)
    }

    /// `gitlab_<schema>_...` after `_test_`: the longest known schema wins, so
    /// `_test_gitlab_main_cell_x` is `gitlab_main_cell`, not `gitlab_main`.
    fn test_schema(&self, rest: &str) -> Option<SchemaId> {
        if !rest.starts_with("gitlab_") {
            return None;
        }
        self.schema_names
            .iter()
            .enumerate()
            .filter(|(_, name)| {
                rest.strip_prefix(name.as_str())
                    .is_some_and(|after| after.starts_with('_'))
            })
            .max_by_key(|(_, name)| name.len())
            .map(|(id, _)| SchemaId::try_from(id).expect("schema ids are u32"))
    }
}

/// `foo_12` → `foo`; `None` when there is no `_<digits>` suffix.
fn strip_partition_suffix(table: &str) -> Option<&str> {
    let digits = table.len() - table.trim_end_matches(|c: char| c.is_ascii_digit()).len();
    if digits == 0 {
        return None;
    }
    table[..table.len() - digits]
        .strip_suffix('_')
        .filter(|s| !s.is_empty())
}

#[cfg(test)]
mod tests {
    use super::strip_partition_suffix;

    #[test]
    fn strips_only_an_underscore_and_digits() {
        assert_eq!(strip_partition_suffix("ci_builds_101"), Some("ci_builds"));
        assert_eq!(strip_partition_suffix("ci_builds"), None);
        assert_eq!(strip_partition_suffix("x2"), None);
        assert_eq!(strip_partition_suffix("_1"), None);
    }
}
