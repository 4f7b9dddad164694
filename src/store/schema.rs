//! The DDL of the tracking tables and the identity table. Statements are idempotent so the
//! install can run on every database, again and again.

/// The identity of a physical database: exactly one row (DESIGN.md section 5).
pub const CREATE_IDENTITY: &str = r#"
CREATE TABLE IF NOT EXISTS schema_fence_identity (
    singleton boolean PRIMARY KEY DEFAULT true,
    name text NOT NULL,
    serves text[] NOT NULL,
    epoch bigint NOT NULL DEFAULT 0,
    stamped_at timestamptz NOT NULL DEFAULT now(),
    -- Set by the cutover's pause step: no new batch is claimed while true (replicated with the data).
    claims_paused boolean NOT NULL DEFAULT false,
    -- Named, and each a comparison, so that Rails dumps them into a schema.rb that loads back:
    -- Rails 6.1 reads a check's expression only inside double parentheses, which PostgreSQL
    -- writes for `(singleton = true)` but not for `(singleton)`, and names only named checks.
    CONSTRAINT check_singleton CHECK (singleton = true),
    CONSTRAINT check_name_length CHECK (char_length(name) <= 255),
    CONSTRAINT check_serves_not_empty CHECK (cardinality(serves) > 0),
    CONSTRAINT check_epoch_not_negative CHECK (epoch >= 0)
);
"#;

/// GitLab's `batched_background_migrations` and `batched_background_migration_jobs`, with the
/// `gitlab_schema` tag (no default: every row is tagged by its enqueue) and the job lease.
pub const CREATE_TRACKING_TABLES: &str = r#"
CREATE TABLE IF NOT EXISTS batched_background_migrations (
    id bigserial PRIMARY KEY,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    min_value bigint NOT NULL DEFAULT 1,
    max_value bigint NOT NULL,
    batch_size integer NOT NULL,
    sub_batch_size integer NOT NULL,
    "interval" smallint NOT NULL,
    status smallint NOT NULL DEFAULT 0,
    job_class_name text NOT NULL,
    batch_class_name text NOT NULL DEFAULT 'PrimaryKeyBatchingStrategy',
    table_name text NOT NULL,
    column_name text NOT NULL,
    job_arguments jsonb NOT NULL DEFAULT '[]',
    total_tuple_count bigint,
    pause_ms integer NOT NULL DEFAULT 100,
    max_batch_size integer,
    started_at timestamptz,
    on_hold_until timestamptz,
    gitlab_schema text NOT NULL,
    queued_migration_version text,
    CONSTRAINT check_batch_size_positive CHECK (batch_size > 0 AND sub_batch_size > 0),
    CONSTRAINT check_sub_batch_size CHECK (sub_batch_size <= batch_size),
    CONSTRAINT check_key_range CHECK (min_value <= max_value),
    CONSTRAINT check_gitlab_schema_length CHECK (char_length(gitlab_schema) <= 255)
);

CREATE TABLE IF NOT EXISTS batched_background_migration_jobs (
    id bigserial PRIMARY KEY,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    started_at timestamptz,
    finished_at timestamptz,
    batched_background_migration_id bigint NOT NULL
        REFERENCES batched_background_migrations (id) ON DELETE CASCADE,
    min_value bigint NOT NULL,
    max_value bigint NOT NULL,
    batch_size integer NOT NULL,
    sub_batch_size integer NOT NULL,
    pause_ms integer NOT NULL DEFAULT 100,
    status smallint NOT NULL DEFAULT 0,
    attempts smallint NOT NULL DEFAULT 0,
    metrics jsonb NOT NULL DEFAULT '{}'
);
"#;

/// Columns this library adds to GitLab's tables, and the indexes; run after the tables exist
/// (also after an upgrade of GitLab-shaped tables).
pub const CREATE_EXTRAS: &str = r#"
ALTER TABLE schema_fence_identity
    ADD COLUMN IF NOT EXISTS claims_paused boolean NOT NULL DEFAULT false;

-- Identity tables of earlier installs have an unnamed `CHECK (singleton)`, which Rails 6.1 dumps
-- into schema.rb as `t.check_constraint nil`: replaced by the named one of CREATE_IDENTITY.
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_constraint
                   WHERE conrelid = 'schema_fence_identity'::regclass AND conname = 'check_singleton') THEN
        ALTER TABLE schema_fence_identity DROP CONSTRAINT IF EXISTS schema_fence_identity_singleton_check;
        ALTER TABLE schema_fence_identity ADD CONSTRAINT check_singleton CHECK (singleton = true);
    END IF;
END
$$;

ALTER TABLE batched_background_migration_jobs
    ADD COLUMN IF NOT EXISTS lease_owner text,
    ADD COLUMN IF NOT EXISTS lease_expires_at timestamptz,
    ADD COLUMN IF NOT EXISTS claimed_epoch bigint;

CREATE UNIQUE INDEX IF NOT EXISTS index_batched_background_migrations_on_unique_tagged_configuration
    ON batched_background_migrations (job_class_name, table_name, column_name, job_arguments, gitlab_schema);

-- The fetch walks executable migrations in queue order, and probes for an older executable
-- migration of the same table (one migration per table at a time).
CREATE INDEX IF NOT EXISTS index_batched_background_migrations_executable
    ON batched_background_migrations (id) INCLUDE (gitlab_schema, table_name) WHERE status IN (1, 5);

CREATE INDEX IF NOT EXISTS index_batched_background_migrations_executable_per_table
    ON batched_background_migrations (table_name, id) WHERE status IN (1, 5);

CREATE INDEX IF NOT EXISTS index_batched_background_migration_jobs_on_migration_and_max_value
    ON batched_background_migration_jobs (batched_background_migration_id, max_value);

CREATE INDEX IF NOT EXISTS index_batched_background_migration_jobs_on_migration_and_id
    ON batched_background_migration_jobs (batched_background_migration_id, id);

CREATE INDEX IF NOT EXISTS index_batched_background_migration_jobs_open
    ON batched_background_migration_jobs (batched_background_migration_id, id)
    WHERE status IN (0, 1, 2);
"#;

/// Whether the tracking table exists, and whether it has the `gitlab_schema` column.
pub const INSPECT_TRACKING_TABLE: &str = r#"
SELECT to_regclass('batched_background_migrations') IS NOT NULL,
       EXISTS (SELECT 1 FROM pg_attribute
               WHERE attrelid = to_regclass('batched_background_migrations')
                 AND attname = 'gitlab_schema' AND NOT attisdropped)
"#;

/// Drops everything the install created (for tests and a full uninstall).
pub const DROP_ALL: &str = r#"
DROP TABLE IF EXISTS batched_background_migration_jobs;
DROP TABLE IF EXISTS batched_background_migrations;
DROP TABLE IF EXISTS schema_fence_identity;
"#;
