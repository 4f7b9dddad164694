//! The DDL of the tracking tables and the identity table. Statements are idempotent so the
//! install can run on every database, again and again.

/// The identity of a physical database: exactly one row (docs/architecture.md section 5), always in `public`
/// and always read schema-qualified, so a table of that name earlier in `search_path` is never
/// read. It records the physical database it was stamped in (`system_identifier`, database oid),
/// and a trigger rejects every write but the library's own stamp (see [`STAMP`]).
pub const CREATE_IDENTITY: &str = r#"
CREATE TABLE IF NOT EXISTS public.schema_fence_identity (
    singleton boolean PRIMARY KEY DEFAULT true,
    name text NOT NULL,
    -- Empty for a retired database (the target of a cutover that was rolled back).
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
    CONSTRAINT check_epoch_not_negative CHECK (epoch >= 0)
);

ALTER TABLE public.schema_fence_identity
    ADD COLUMN IF NOT EXISTS system_identifier bigint,
    ADD COLUMN IF NOT EXISTS database_oid bigint;

CREATE OR REPLACE FUNCTION public.schema_fence_identity_guard() RETURNS trigger
LANGUAGE plpgsql AS $guard$
BEGIN
    IF current_setting('schema_fence.stamp', true) IS DISTINCT FROM txid_current()::text THEN
        RAISE EXCEPTION 'schema_fence_identity is written only by schema_fence itself (install, cutover, adopt)'
            USING ERRCODE = 'insufficient_privilege',
                  HINT = 'to take over a copy of a database on purpose, run rake schema_fence:identity:adopt '
                         '(SchemaFence::Identity.adopt)';
    END IF;
    IF TG_LEVEL = 'STATEMENT' THEN
        RETURN NULL;
    END IF;
    RETURN COALESCE(NEW, OLD);
END
$guard$;

CREATE OR REPLACE TRIGGER schema_fence_identity_guard
    BEFORE INSERT OR UPDATE OR DELETE ON public.schema_fence_identity
    FOR EACH ROW EXECUTE FUNCTION public.schema_fence_identity_guard();

CREATE OR REPLACE TRIGGER schema_fence_identity_guard_truncate
    BEFORE TRUNCATE ON public.schema_fence_identity
    FOR EACH STATEMENT EXECUTE FUNCTION public.schema_fence_identity_guard();
"#;

/// A one-row subquery that allows writing the identity in this transaction only: the trigger
/// compares the setting with the transaction's id, so a session-wide SET of it allows nothing.
/// Join it in the writing statement (`FROM STAMP` / `SELECT ... FROM STAMP`).
pub const STAMP: &str =
    "(SELECT set_config('schema_fence.stamp', txid_current()::text, true)) AS schema_fence_stamp";

/// Where the connection is: the cluster's `system_identifier` and the database's oid.
pub const HERE: &str = "(SELECT system_identifier FROM pg_control_system())::bigint, \
    (SELECT oid FROM pg_database WHERE datname = current_database())::bigint";

/// GitLab's tracking tables as GitLab's `db/structure.sql` has them now (the fixture
/// `batched_background_migrations.sql`): no defaults on the timestamps, so every write of this
/// library names them, and GitLab's checks and unique indexes. Each is created only where it does
/// not exist yet, with its indexes: an existing table is left as it is. This one is
/// `batched_background_migrations`.
pub const CREATE_MIGRATIONS: &str = r#"
CREATE TABLE IF NOT EXISTS batched_background_migrations (
    id bigserial PRIMARY KEY,
    created_at timestamp with time zone NOT NULL,
    updated_at timestamp with time zone NOT NULL,
    min_value bigint DEFAULT 1,
    max_value bigint,
    batch_size integer NOT NULL,
    sub_batch_size integer NOT NULL,
    "interval" smallint NOT NULL,
    status smallint DEFAULT 0 NOT NULL,
    job_class_name text NOT NULL,
    batch_class_name text DEFAULT 'PrimaryKeyBatchingStrategy'::text NOT NULL,
    table_name text NOT NULL,
    column_name text NOT NULL,
    job_arguments jsonb DEFAULT '[]'::jsonb NOT NULL,
    total_tuple_count bigint,
    pause_ms integer DEFAULT 100 NOT NULL,
    max_batch_size integer,
    started_at timestamp with time zone,
    on_hold_until timestamp with time zone,
    gitlab_schema text NOT NULL,
    finished_at timestamp with time zone,
    queued_migration_version text,
    min_cursor jsonb,
    max_cursor jsonb,
    CONSTRAINT check_0406d9776f CHECK ((char_length(gitlab_schema) <= 255)),
    CONSTRAINT check_122750e705 CHECK (((jsonb_typeof(min_cursor) = 'array'::text) AND (jsonb_typeof(max_cursor) = 'array'::text))),
    CONSTRAINT check_5bb0382d6f CHECK ((char_length(column_name) <= 63)),
    CONSTRAINT check_6b6a06254a CHECK ((char_length(table_name) <= 63)),
    CONSTRAINT check_713f147aea CHECK ((char_length(queued_migration_version) <= 14)),
    CONSTRAINT check_batch_size_in_range CHECK ((batch_size >= sub_batch_size)),
    CONSTRAINT check_e6c75b1e29 CHECK ((char_length(job_class_name) <= 100)),
    CONSTRAINT check_f5158baa12 CHECK (((num_nonnulls(min_value, max_value) = 2) OR (num_nonnulls(min_cursor, max_cursor) = 2))),
    CONSTRAINT check_fe10674721 CHECK ((char_length(batch_class_name) <= 100)),
    CONSTRAINT check_max_value_in_range CHECK ((max_value >= min_value)),
    CONSTRAINT check_positive_min_value CHECK ((min_value > 0)),
    CONSTRAINT check_positive_sub_batch_size CHECK ((sub_batch_size > 0))
);
CREATE INDEX IF NOT EXISTS index_batched_background_migrations_on_status
    ON batched_background_migrations USING btree (status);
CREATE UNIQUE INDEX IF NOT EXISTS index_batched_background_migrations_on_unique_configuration
    ON batched_background_migrations USING btree (job_class_name, table_name, column_name, job_arguments);
"#;

/// GitLab's `batched_background_migration_jobs`, where it does not exist yet.
pub const CREATE_JOBS: &str = r#"
CREATE TABLE IF NOT EXISTS batched_background_migration_jobs (
    id bigserial PRIMARY KEY,
    created_at timestamp with time zone NOT NULL,
    updated_at timestamp with time zone NOT NULL,
    started_at timestamp with time zone,
    finished_at timestamp with time zone,
    batched_background_migration_id bigint NOT NULL
        REFERENCES batched_background_migrations (id) ON DELETE CASCADE,
    min_value bigint,
    max_value bigint,
    batch_size integer NOT NULL,
    sub_batch_size integer NOT NULL,
    status smallint DEFAULT 0 NOT NULL,
    attempts smallint DEFAULT 0 NOT NULL,
    metrics jsonb DEFAULT '{}'::jsonb NOT NULL,
    pause_ms integer DEFAULT 100 NOT NULL,
    min_cursor jsonb,
    max_cursor jsonb,
    CONSTRAINT check_18d498ea58 CHECK (((jsonb_typeof(min_cursor) = 'array'::text) AND (jsonb_typeof(max_cursor) = 'array'::text))),
    CONSTRAINT check_c1ce96fe3b CHECK (((num_nonnulls(min_value, max_value) = 2) OR (num_nonnulls(min_cursor, max_cursor) = 2)))
);

CREATE INDEX IF NOT EXISTS index_batched_jobs_by_batched_migration_id_and_id
    ON batched_background_migration_jobs USING btree (batched_background_migration_id, id);
CREATE INDEX IF NOT EXISTS index_batched_jobs_on_batched_migration_id_and_status
    ON batched_background_migration_jobs USING btree (batched_background_migration_id, status);
CREATE INDEX IF NOT EXISTS index_migration_jobs_on_migration_id_and_max_value
    ON batched_background_migration_jobs USING btree (batched_background_migration_id, max_value);
CREATE INDEX IF NOT EXISTS index_migration_jobs_on_migration_id_and_finished_at
    ON batched_background_migration_jobs USING btree (batched_background_migration_id, finished_at);
"#;

/// GitLab's job transition log (partitioned; a default partition), where it does not exist yet:
/// GitLab's own database has its partitions already and gets none from this library.
pub const CREATE_TRANSITION_LOGS: &str = r#"
CREATE TABLE IF NOT EXISTS batched_background_migration_job_transition_logs (
    id bigserial NOT NULL,
    batched_background_migration_job_id bigint NOT NULL
        REFERENCES batched_background_migration_jobs (id) ON DELETE CASCADE,
    created_at timestamp with time zone NOT NULL,
    updated_at timestamp with time zone NOT NULL,
    previous_status smallint NOT NULL,
    next_status smallint NOT NULL,
    exception_class text,
    exception_message text,
    CONSTRAINT check_50e580811a CHECK ((char_length(exception_message) <= 1000)),
    CONSTRAINT check_76e202c37a CHECK ((char_length(exception_class) <= 100)),
    PRIMARY KEY (id, created_at)
) PARTITION BY RANGE (created_at);
CREATE INDEX IF NOT EXISTS i_batched_background_migration_job_transition_logs_on_job_id
    ON batched_background_migration_job_transition_logs USING btree (batched_background_migration_job_id);
CREATE TABLE IF NOT EXISTS batched_background_migration_job_transition_logs_default
    PARTITION OF batched_background_migration_job_transition_logs DEFAULT;
"#;

/// Columns this library adds to GitLab's tables, and the indexes; run after the tables exist
/// (also after an upgrade of GitLab-shaped tables).
pub const CREATE_EXTRAS: &str = r#"
ALTER TABLE public.schema_fence_identity
    ADD COLUMN IF NOT EXISTS claims_paused boolean NOT NULL DEFAULT false;
-- Older installs refused an empty serves; a retired database serves nothing.
ALTER TABLE public.schema_fence_identity DROP CONSTRAINT IF EXISTS schema_fence_identity_serves_check;
ALTER TABLE public.schema_fence_identity DROP CONSTRAINT IF EXISTS check_serves_not_empty;

-- Identity tables of earlier installs have an unnamed `CHECK (singleton)`, which Rails 6.1 dumps
-- into schema.rb as `t.check_constraint nil`: replaced by the named one of CREATE_IDENTITY.
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_constraint
                   WHERE conrelid = 'public.schema_fence_identity'::regclass AND conname = 'check_singleton') THEN
        ALTER TABLE public.schema_fence_identity DROP CONSTRAINT IF EXISTS schema_fence_identity_singleton_check;
        ALTER TABLE public.schema_fence_identity ADD CONSTRAINT check_singleton CHECK (singleton = true);
    END IF;
END
$$;

ALTER TABLE batched_background_migration_jobs
    ADD COLUMN IF NOT EXISTS lease_owner text,
    ADD COLUMN IF NOT EXISTS lease_expires_at timestamptz,
    ADD COLUMN IF NOT EXISTS claimed_epoch bigint,
    -- The batch optimizer's decision after this job: the smoothed efficiency and the batch size.
    ADD COLUMN IF NOT EXISTS schema_fence_efficiency double precision,
    ADD COLUMN IF NOT EXISTS schema_fence_next_batch_size integer;

-- Why a health indicator put the migration on hold (until on_hold_until).
ALTER TABLE batched_background_migrations ADD COLUMN IF NOT EXISTS schema_fence_hold_reason text;
-- The job class's cursor columns, stored when this library queued a cursor-batched migration:
-- the claim has no job class and walks these (a row GitLab wrote has none: its primary key).
ALTER TABLE batched_background_migrations ADD COLUMN IF NOT EXISTS schema_fence_cursor_columns text[];

-- GitLab's own index of its gitlab_schema migration (20220503035221 and later): the idempotency
-- key of the enqueue. A no-op where GitLab created it already.
CREATE UNIQUE INDEX IF NOT EXISTS index_batched_migrations_on_gl_schema_and_unique_configuration
    ON batched_background_migrations USING btree (gitlab_schema, job_class_name, table_name, column_name, job_arguments);

-- The fetch once walked executable migrations in queue order over this index. It ranges over
-- index_batched_background_migrations_due now, and at 1,000,000 rows the generic plan of the
-- fetch preferred this one when no migration was due, walking all of them (tests/fetch.rs with
-- SCHEMA_FENCE_FETCH_ROWS=1000000): an install drops it.
DROP INDEX IF EXISTS index_batched_background_migrations_executable;

-- The fetch probes for an older executable migration of the same table (one migration per table
-- at a time).
CREATE INDEX IF NOT EXISTS index_batched_background_migrations_executable_per_table
    ON batched_background_migrations (table_name, id) WHERE status IN (1, 5);

-- GitLab's index_migration_jobs_on_migration_id_and_max_value and
-- index_batched_jobs_by_batched_migration_id_and_id serve the claim's range and latest-job probes.
CREATE INDEX IF NOT EXISTS index_batched_background_migration_jobs_open
    ON batched_background_migration_jobs (batched_background_migration_id, id)
    WHERE status IN (0, 1, 2);
"#;

/// Whether the tracking table exists, whether it has the `gitlab_schema` column, and whether
/// the jobs and transition log tables exist.
pub const INSPECT_TRACKING_TABLE: &str = r#"
SELECT to_regclass('batched_background_migrations') IS NOT NULL,
       EXISTS (SELECT 1 FROM pg_attribute
               WHERE attrelid = to_regclass('batched_background_migrations')
                 AND attname = 'gitlab_schema' AND NOT attisdropped),
       to_regclass('batched_background_migration_jobs') IS NOT NULL,
       to_regclass('batched_background_migration_job_transition_logs') IS NOT NULL
"#;

/// Drops everything the install created (for tests and a full uninstall).
pub const DROP_ALL: &str = r#"
DROP TABLE IF EXISTS batched_background_migration_job_transition_logs;
DROP TABLE IF EXISTS batched_background_migration_jobs;
DROP TABLE IF EXISTS batched_background_migrations;
DROP TABLE IF EXISTS public.schema_fence_identity;
DROP FUNCTION IF EXISTS public.schema_fence_identity_guard();
DROP FUNCTION IF EXISTS public.schema_fence_log_job_transition();
DROP FUNCTION IF EXISTS public.schema_fence_maintain_transition_logs(integer, integer);
DROP FUNCTION IF EXISTS public.schema_fence_migration_next_run();
DROP FUNCTION IF EXISTS public.schema_fence_job_next_run();
DROP FUNCTION IF EXISTS public.schema_fence_next_run_at(bigint, timestamptz, smallint);
DROP FUNCTION IF EXISTS public.schema_fence_claim(text, text[], bigint, bigint, bigint, text[],
    bigint, boolean, text, double precision, smallint, double precision, bigint, bigint[]);
DROP FUNCTION IF EXISTS public.schema_fence_claim(text, text[], bigint, bigint, bigint, text[],
    bigint, boolean, text, double precision, smallint, double precision, bigint, bigint[],
    bigint[]);
"#;
