//! Queueing a batched background migration with its tag (docs/architecture.md section 6).

use super::{opt_int, text, Db};
use crate::batching::{self, Strategy};
use crate::dictionary::Dictionary;
use crate::error::{Error, Result, StoreError};
use crate::sql::{check_identifier, quote_ident, quote_table};
use crate::tagging;

/// GitLab's defaults for `queue_batched_background_migration`.
pub const DEFAULT_JOB_INTERVAL_SECONDS: i64 = 120;
pub const DEFAULT_BATCH_SIZE: i64 = 1_000;
pub const DEFAULT_SUB_BATCH_SIZE: i64 = 100;
pub const DEFAULT_BATCH_MIN_VALUE: i64 = 1;
pub const DEFAULT_PAUSE_MS: i64 = 100;
/// GitLab's `BATCH_MIN_DELAY`: the migration DSL raises a shorter `job_interval` to this.
pub const MIN_JOB_INTERVAL_SECONDS: i64 = 120;

/// GitLab's checks on `batched_background_migrations` (`check_e6c75b1e29`, `check_6b6a06254a`,
/// `check_713f147aea`), refused here with the value instead of as a constraint violation.
const MAX_JOB_CLASS_NAME_CHARS: usize = 100;
const MAX_TABLE_NAME_CHARS: usize = 63;
const MAX_VERSION_CHARS: usize = 14;

/// The interval to store: GitLab's default when none is given; with `gitlab_minimum` (the
/// migration DSL, as GitLab's `queue_batched_background_migration`) never less than 2 minutes.
/// Direct callers (tests, benches) may store less.
pub fn job_interval(given: Option<i64>, gitlab_minimum: bool) -> i64 {
    let interval = given.unwrap_or(DEFAULT_JOB_INTERVAL_SECONDS);
    if gitlab_minimum {
        interval.max(MIN_JOB_INTERVAL_SECONDS)
    } else {
        interval
    }
}

/// Everything `queue_batched_background_migration` was given.
#[derive(Debug, Clone)]
pub struct QueueRequest {
    pub job_class_name: String,
    pub table_name: String,
    pub column_name: String,
    /// A JSON array, as text: serialized once by the caller, checked here, bound as it is.
    pub job_arguments: String,
    /// The migration's `restrict_gitlab_migration gitlab_schema:`, if it declared one.
    pub restriction: Option<String>,
    pub job_interval_seconds: i64,
    pub batch_size: i64,
    pub sub_batch_size: i64,
    pub batch_min_value: i64,
    pub batch_max_value: Option<i64>,
    pub max_batch_size: Option<i64>,
    pub pause_ms: i64,
    pub queued_migration_version: Option<String>,
    /// GitLab's `batch_class_name` (see [`crate::batching`]).
    pub batch_class_name: String,
    /// An explicit `gitlab_schema:`: it must be the tag the restriction and the table give.
    pub gitlab_schema: Option<String>,
    /// The job class's `cursor` columns: the migration is cursor-batched over them, with
    /// `min_cursor`/`max_cursor` instead of `min_value`/`max_value`.
    pub cursor_columns: Option<Vec<String>>,
    /// Given cursors (GitLab's `batch_min_value`/`batch_max_value` as arrays); else the first
    /// and last key in keyset order.
    pub min_cursor: Option<Vec<i64>>,
    pub max_cursor: Option<Vec<i64>>,
}

impl QueueRequest {
    pub fn new(job_class_name: &str, table_name: &str, column_name: &str) -> Self {
        QueueRequest {
            job_class_name: job_class_name.into(),
            table_name: table_name.into(),
            column_name: column_name.into(),
            job_arguments: "[]".into(),
            restriction: None,
            job_interval_seconds: DEFAULT_JOB_INTERVAL_SECONDS,
            batch_size: DEFAULT_BATCH_SIZE,
            sub_batch_size: DEFAULT_SUB_BATCH_SIZE,
            batch_min_value: DEFAULT_BATCH_MIN_VALUE,
            batch_max_value: None,
            max_batch_size: None,
            pause_ms: DEFAULT_PAUSE_MS,
            queued_migration_version: None,
            batch_class_name: batching::PRIMARY_KEY.into(),
            gitlab_schema: None,
            cursor_columns: None,
            min_cursor: None,
            max_cursor: None,
        }
    }

    /// Checks every value before anything is sent to the database.
    pub fn validate(&self) -> Result<()> {
        let invalid = |what: &str, problem: String| {
            Err(Error::InvalidArgument {
                what: what.to_string(),
                problem,
            })
        };
        if self.job_class_name.trim().is_empty() {
            return invalid("job_class_name", "is empty".into());
        }
        if self.job_class_name.chars().count() > MAX_JOB_CLASS_NAME_CHARS {
            return invalid(
                "job_class_name",
                format!(
                    "{:?} is longer than GitLab's {MAX_JOB_CLASS_NAME_CHARS} characters",
                    self.job_class_name
                ),
            );
        }
        check_identifier("table", self.table_name.rsplit('.').next().unwrap_or(""))?;
        if self.table_name.chars().count() > MAX_TABLE_NAME_CHARS {
            return invalid(
                "table_name",
                format!(
                    "{:?} is longer than GitLab's {MAX_TABLE_NAME_CHARS} characters",
                    self.table_name
                ),
            );
        }
        if let Some(version) = &self.queued_migration_version {
            if version.chars().count() > MAX_VERSION_CHARS {
                return invalid(
                    "queued_migration_version",
                    format!("{version:?} is longer than GitLab's {MAX_VERSION_CHARS} characters"),
                );
            }
        }
        Strategy::parse(&self.batch_class_name)?;
        check_identifier("column", &self.column_name)?;
        // Checked without building the values: the text is what gets bound.
        if let Err(e) = serde_json::from_str::<Vec<serde::de::IgnoredAny>>(&self.job_arguments) {
            return invalid("job_arguments", format!("must be a JSON array: {e}"));
        }
        let positive = [
            ("batch_size", self.batch_size),
            ("sub_batch_size", self.sub_batch_size),
        ];
        for (what, value) in positive {
            if value <= 0 || value > i64::from(i32::MAX) {
                return invalid(
                    what,
                    format!("must be between 1 and {}, got {value}", i32::MAX),
                );
            }
        }
        if self.sub_batch_size > self.batch_size {
            return invalid(
                "sub_batch_size",
                format!(
                    "must not exceed batch_size ({}), got {}",
                    self.batch_size, self.sub_batch_size
                ),
            );
        }
        if let Some(max) = self.max_batch_size {
            if max < self.batch_size || max > i64::from(i32::MAX) {
                return invalid(
                    "max_batch_size",
                    format!(
                        "must be at least batch_size ({}), got {max}",
                        self.batch_size
                    ),
                );
            }
        }
        // 0 means "no wait between batches" (GitLab enforces 2 minutes; tests and small tables
        // need not).
        if self.job_interval_seconds < 0 || self.job_interval_seconds > i64::from(i16::MAX) {
            return invalid(
                "job_interval",
                format!(
                    "must be between 0 and {} seconds, got {}",
                    i16::MAX,
                    self.job_interval_seconds
                ),
            );
        }
        if self.pause_ms < 0 || self.pause_ms > i64::from(i32::MAX) {
            return invalid(
                "pause_ms",
                format!("must be 0 or more, got {}", self.pause_ms),
            );
        }
        // GitLab's check_positive_min_value.
        if self.batch_min_value <= 0 {
            return invalid(
                "batch_min_value",
                format!("must be 1 or more, got {}", self.batch_min_value),
            );
        }
        if let Some(max) = self.batch_max_value {
            if self.batch_min_value > max {
                return invalid(
                    "batch_min_value",
                    format!("{} is above batch_max_value {max}", self.batch_min_value),
                );
            }
        }
        Ok(())
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum QueueOutcome {
    /// A new row; `finished` when the table was empty (nothing to migrate).
    Queued {
        id: i64,
        tag: String,
        finished: bool,
    },
    /// The same job class, table, column, arguments and tag were queued before.
    AlreadyQueued { id: i64, tag: String },
}

/// The insert; `{version}` adds `queued_migration_version` (`$16`) where the table has that
/// column (GitLab added it in 2023); `{range}` is `min_value, max_value` or, for a cursor, `min_cursor,
/// max_cursor` (`$10`, `$11`), `min_value`/`max_value` then left to the table's defaults, as
/// GitLab's model leaves them, and the cursor columns go to this library's
/// `schema_fence_cursor_columns` (the next parameter, a JSON array), which the claim walks. Any unique index of GitLab's is a conflict: the
/// configuration index (with or without the tag) is the idempotency key.
const INSERT: &str = r#"
INSERT INTO batched_background_migrations
    (created_at, updated_at, job_class_name, table_name, column_name, job_arguments, gitlab_schema,
     "interval", batch_size, sub_batch_size, max_batch_size, {range}, pause_ms, status,
     batch_class_name, total_tuple_count{version}{cursor_columns})
VALUES (now(), now(), $1, $2, $3, $4::jsonb, $5, $6::smallint, $7::integer, $8::integer, $9::integer,
        {range_values}, $12::integer, $13::smallint, $14,
        (SELECT reltuples::bigint FROM pg_class WHERE oid = to_regclass($15)){version_value}{cursor_columns_value})
ON CONFLICT DO NOTHING
RETURNING id::text
"#;

fn insert_sql(with_version: bool, cursor: bool) -> String {
    let (column, value) = if with_version {
        (", queued_migration_version", ", $16")
    } else {
        ("", "")
    };
    let (range, range_values) = if cursor {
        ("min_cursor, max_cursor", "$10::jsonb, $11::jsonb")
    } else {
        ("min_value, max_value", "$10::bigint, $11::bigint")
    };
    let (columns, columns_value) = if cursor {
        let n = if with_version { 17 } else { 16 };
        (
            ", schema_fence_cursor_columns".to_string(),
            format!(", ARRAY(SELECT jsonb_array_elements_text(${n}::jsonb))"),
        )
    } else {
        (String::new(), String::new())
    };
    INSERT
        .replace("{version_value}", value)
        .replace("{version}", column)
        .replace("{cursor_columns_value}", &columns_value)
        .replace("{cursor_columns}", &columns)
        .replace("{range_values}", range_values)
        .replace("{range}", range)
}

const FIND: &str = "SELECT id::text FROM batched_background_migrations \
    WHERE job_class_name = $1 AND table_name = $2 AND column_name = $3 \
      AND job_arguments = $4::jsonb AND gitlab_schema = $5";

/// The table's column, checked with bound names before any statement names it.
/// Also the column's type, and whether the tracking table has `queued_migration_version`.
const COLUMN_EXISTS: &str =
    "SELECT to_regclass($1) IS NOT NULL, EXISTS (SELECT 1 FROM pg_attribute \
    WHERE attrelid = to_regclass($1) AND attname = $2 AND attnum > 0 AND NOT attisdropped), \
    (SELECT format_type(atttypid, NULL) FROM pg_attribute \
     WHERE attrelid = to_regclass($1) AND attname = $2 AND attnum > 0 AND NOT attisdropped), \
    EXISTS (SELECT 1 FROM pg_attribute WHERE attrelid = 'batched_background_migrations'::regclass \
            AND attname = 'queued_migration_version' AND NOT attisdropped)";

/// A row with the same configuration under any tag (GitLab's unique index without the tag).
const FIND_ANY_TAG: &str = "SELECT id::text, gitlab_schema FROM batched_background_migrations \
    WHERE job_class_name = $1 AND table_name = $2 AND column_name = $3 AND job_arguments = $4::jsonb";

/// Tags and inserts the migration in the caller's transaction. The caller has already decided
/// that this database serves the restriction (otherwise the migration is skipped, not queued).
pub fn queue(db: &mut dyn Db, dictionary: &Dictionary, req: &QueueRequest) -> Result<QueueOutcome> {
    req.validate()?;
    let tag = tagging::tag(dictionary, &req.table_name, req.restriction.as_deref())?;
    if let Some(given) = &req.gitlab_schema {
        if *given != tag {
            return Err(Error::InvalidArgument {
                what: "gitlab_schema".into(),
                problem: format!(
                    "{given} was given, but table {:?} and the migration's restriction make it {tag}",
                    req.table_name
                ),
            });
        }
    }
    let strategy = Strategy::parse(&req.batch_class_name)?;
    let quoted_table = quote_table(&req.table_name)?;
    let found = db.query(
        COLUMN_EXISTS,
        &[Some(&quoted_table), Some(&req.column_name)],
    )?;
    if text(&found[0], 0)? != "t" {
        return Err(Error::Store(StoreError::TableNotFound {
            table: req.table_name.clone(),
        }));
    }
    if text(&found[0], 1)? != "t" {
        return Err(Error::Store(StoreError::ColumnNotFound {
            table: req.table_name.clone(),
            column: req.column_name.clone(),
        }));
    }
    let column_type = text(&found[0], 2)?;
    if !batching::KEY_TYPES.contains(&column_type) {
        return Err(Error::InvalidArgument {
            what: "batch column".into(),
            problem: format!(
                "{}.{} is {column_type}; batched background migrations batch over {} keys",
                req.table_name,
                req.column_name,
                batching::KEY_TYPES.join(", ")
            ),
        });
    }
    let with_version = text(&found[0], 3)? == "t";
    if let Some(columns) = &req.cursor_columns {
        let range = cursor_range(db, req, &quoted_table, columns)?;
        return insert(db, req, &tag, strategy, &quoted_table, with_version, range);
    }
    let max_value = if let Some(max) = req.batch_max_value {
        Some(max)
    } else {
        let sql = format!(
            "SELECT max({})::bigint::text FROM {quoted_table}",
            quote_ident(&req.column_name)
        );
        opt_int(&db.query(&sql, &[])?[0], 0)?
    };
    // An empty table has nothing to migrate: GitLab queues it as already finished.
    let range = match max_value {
        Some(max) if max >= req.batch_min_value => Range::Ids(req.batch_min_value, max, "1"),
        _ => Range::Ids(req.batch_min_value, req.batch_min_value, "3"),
    };
    insert(db, req, &tag, strategy, &quoted_table, with_version, range)
}

/// The migration's key range: ids, or cursors as JSON; with its status (`"3"`: nothing to do).
enum Range {
    Ids(i64, i64, &'static str),
    /// The first and last key, the status, and the cursor columns, each as JSON.
    Cursors(String, String, &'static str, String),
}

/// The cursors: given, or the first and last key in keyset order over the (checked) columns;
/// an empty table is queued finished, as GitLab queues it.
fn cursor_range(
    db: &mut dyn Db,
    req: &QueueRequest,
    quoted_table: &str,
    columns: &[String],
) -> Result<Range> {
    let names = super::enqueue_cursor::check_columns(db, &req.table_name, quoted_table, columns)?;
    let given = |what: &str, keys: &Option<Vec<i64>>| {
        keys.as_deref()
            .map(|k| super::enqueue_cursor::given(what, k, columns))
            .transpose()
    };
    let (min, max) = (
        given("batch_min_value", &req.min_cursor)?,
        given("batch_max_value", &req.max_cursor)?,
    );
    if let (Some(min), Some(max)) = (&min, &max) {
        return Ok(Range::Cursors(min.clone(), max.clone(), "1", names));
    }
    if let Some((first, last)) = super::enqueue_cursor::bounds(db, quoted_table, columns)? {
        return Ok(Range::Cursors(
            min.unwrap_or(first),
            max.unwrap_or(last),
            "1",
            names,
        ));
    }
    let start = min.unwrap_or_else(|| {
        serde_json::Value::from(vec![req.batch_min_value; columns.len()]).to_string()
    });
    Ok(Range::Cursors(start.clone(), start, "3", names))
}

fn insert(
    db: &mut dyn Db,
    req: &QueueRequest,
    tag: &str,
    strategy: Strategy,
    quoted_table: &str,
    with_version: bool,
    range: Range,
) -> Result<QueueOutcome> {
    let tag = tag.to_string();
    let (min, max, status, cursor_columns) = match range {
        Range::Ids(min, max, status) => (min.to_string(), max.to_string(), status, None),
        Range::Cursors(min, max, status, columns) => (min, max, status, Some(columns)),
    };
    let arguments = req.job_arguments.as_str();
    let numbers = [
        req.job_interval_seconds.to_string(),
        req.batch_size.to_string(),
        req.sub_batch_size.to_string(),
        req.max_batch_size
            .map(|m| m.to_string())
            .unwrap_or_default(),
        req.pause_ms.to_string(),
    ];
    let params = [
        Some(req.job_class_name.as_str()),
        Some(req.table_name.as_str()),
        Some(req.column_name.as_str()),
        Some(arguments),
        Some(tag.as_str()),
        Some(numbers[0].as_str()),
        Some(numbers[1].as_str()),
        Some(numbers[2].as_str()),
        req.max_batch_size.map(|_| numbers[3].as_str()),
        Some(min.as_str()),
        Some(max.as_str()),
        Some(numbers[4].as_str()),
        Some(status),
        Some(strategy.name()),
        Some(quoted_table),
        req.queued_migration_version.as_deref(),
    ];
    let mut params = if with_version {
        params.to_vec()
    } else {
        params[..15].to_vec()
    };
    if let Some(columns) = &cursor_columns {
        params.push(Some(columns.as_str()));
    }
    let inserted = db.query(&insert_sql(with_version, cursor_columns.is_some()), &params)?;
    if let Some(row) = inserted.first() {
        return Ok(QueueOutcome::Queued {
            id: text(row, 0)?.parse().unwrap_or_default(),
            tag,
            finished: status == "3",
        });
    }
    if let Some(existing) = find(db, req, &tag, arguments)? {
        return Ok(QueueOutcome::AlreadyQueued { id: existing, tag });
    }
    let other = db.query(
        FIND_ANY_TAG,
        &[
            Some(&req.job_class_name),
            Some(&req.table_name),
            Some(&req.column_name),
            Some(arguments),
        ],
    )?;
    match other.first() {
        Some(row) => Err(Error::InvalidArgument {
            what: "gitlab_schema".into(),
            problem: format!(
                "batched_background_migrations row {} has this job class, table, column and \
                 arguments but is tagged {}, not {tag} (GitLab's blanket tag of older rows?): \
                 run rake schema_fence:retag, then queue again",
                text(row, 0)?,
                text(row, 1)?
            ),
        }),
        None => Err(Error::unexpected(
            "the migration conflicted with an existing row that is now gone; retry",
        )),
    }
}

fn find(db: &mut dyn Db, req: &QueueRequest, tag: &str, arguments: &str) -> Result<Option<i64>> {
    let rows = db.query(
        FIND,
        &[
            Some(&req.job_class_name),
            Some(&req.table_name),
            Some(&req.column_name),
            Some(arguments),
            Some(tag),
        ],
    )?;
    rows.first().map(|r| super::int(r, 0)).transpose()
}

/// Deletes the migration queued with this key (tag included) and its jobs; returns how many
/// migrations were deleted (0 or 1).
pub fn delete(db: &mut dyn Db, dictionary: &Dictionary, req: &QueueRequest) -> Result<usize> {
    let tag = tagging::tag(dictionary, &req.table_name, req.restriction.as_deref())?;
    let arguments = req.job_arguments.as_str();
    let deleted = db.query(
        "DELETE FROM batched_background_migrations \
         WHERE job_class_name = $1 AND table_name = $2 AND column_name = $3 \
           AND job_arguments = $4::jsonb AND gitlab_schema = $5 RETURNING id",
        &[
            Some(&req.job_class_name),
            Some(&req.table_name),
            Some(&req.column_name),
            Some(arguments),
            Some(&tag),
        ],
    )?;
    Ok(deleted.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request() -> QueueRequest {
        QueueRequest::new("BackfillThings", "ci_builds", "id")
    }

    #[test]
    fn defaults_are_gitlabs_and_valid() {
        let req = request();
        assert_eq!(
            (req.batch_size, req.sub_batch_size, req.pause_ms),
            (1000, 100, 100)
        );
        req.validate().unwrap();
    }

    #[test]
    fn bad_sizes_and_ranges_are_refused_with_the_value() {
        type Change = Box<dyn Fn(&mut QueueRequest)>;
        let cases: Vec<(&str, Change)> = vec![
            ("batch_size", Box::new(|r| r.batch_size = 0)),
            ("batch_size", Box::new(|r| r.batch_size = -5)),
            ("sub_batch_size", Box::new(|r| r.sub_batch_size = 0)),
            ("sub_batch_size", Box::new(|r| r.sub_batch_size = 5000)),
            ("max_batch_size", Box::new(|r| r.max_batch_size = Some(10))),
            ("job_interval", Box::new(|r| r.job_interval_seconds = -1)),
            ("pause_ms", Box::new(|r| r.pause_ms = -1)),
            (
                "batch_min_value",
                Box::new(|r| {
                    r.batch_min_value = 10;
                    r.batch_max_value = Some(5);
                }),
            ),
        ];
        for (what, change) in cases {
            let mut req = request();
            change(&mut req);
            let err = req.validate().unwrap_err();
            assert!(err.to_string().contains(what), "{what}: {err}");
        }
    }

    #[test]
    fn the_dsl_interval_is_gitlabs_two_minutes_at_least() {
        assert_eq!(job_interval(None, true), 120);
        assert_eq!(job_interval(Some(30), true), 120);
        assert_eq!(job_interval(Some(600), true), 600);
        assert_eq!(job_interval(Some(0), false), 0);
    }

    #[test]
    fn gitlabs_checks_are_refused_with_the_value() {
        let mut req = request();
        req.batch_min_value = 0;
        assert!(req
            .validate()
            .unwrap_err()
            .to_string()
            .contains("batch_min_value"));
        let mut req = request();
        req.job_class_name = "J".repeat(101);
        assert!(req
            .validate()
            .unwrap_err()
            .to_string()
            .contains("100 characters"));
        let mut req = request();
        req.table_name = format!("gitlab_partitions_dynamic.{}", "t".repeat(50));
        assert!(req
            .validate()
            .unwrap_err()
            .to_string()
            .contains("63 characters"));
        let mut req = request();
        req.batch_class_name = "DismissedVulnerabilitiesStrategy".into();
        let err = req.validate().unwrap_err().to_string();
        assert!(err.contains("LooseIndexScanBatchingStrategy"), "{err}");
    }

    #[test]
    fn names_postgres_would_truncate_are_refused() {
        let mut req = request();
        req.column_name = "c".repeat(64);
        assert!(matches!(
            req.validate(),
            Err(Error::InvalidIdentifier { .. })
        ));
    }
}
