# frozen_string_literal: true

require "pg"

# GitLab's own tracking tables (the fixture's DDL) holding rows as GitLab writes them, for the
# specs that check schema_fence on what a GitLab database really has.
module GitlabRows
  module_function

  # Creates GitLab's tables and the migrated tables (ci_builds bigint, projects integer, ci_stages
  # with a composite key), each with a done counter.
  def create(url)
    PG.connect(url) do |c|
      c.exec(File.read(GitlabFixtures.path("batched_background_migrations.sql")))
      c.exec(<<~SQL)
        CREATE TABLE ci_builds (id bigint PRIMARY KEY, done int NOT NULL DEFAULT 0);
        INSERT INTO ci_builds (id) SELECT generate_series(1, 300);
        CREATE TABLE projects (id integer PRIMARY KEY, done int NOT NULL DEFAULT 0);
        INSERT INTO projects (id) SELECT generate_series(1, 200);
        CREATE TABLE ci_stages (id bigint, partition_id bigint, done int NOT NULL DEFAULT 0, PRIMARY KEY (id, partition_id));
        INSERT INTO ci_stages (id, partition_id) SELECT i, 100 FROM generate_series(1, 20) i;
      SQL
    end
  end

  # A migration row as GitLab's helper writes it; returns its id.
  def migration(url, job, table, status:, range:, tag:, interval: 0)
    PG.connect(url) do |c|
      c.exec_params(<<~SQL, [range.first, range.last, status, job, table, tag, interval]).getvalue(0, 0).to_i
        INSERT INTO batched_background_migrations (created_at, updated_at, min_value, max_value, batch_size,
          sub_batch_size, "interval", status, job_class_name, table_name, column_name, job_arguments, pause_ms,
          gitlab_schema)
        VALUES (now() - interval '2 days', now() - interval '2 days', $1, $2, 100, 50, $7, $3, $4, $5, 'id', '[]', 0, $6)
        RETURNING id
      SQL
    end
  end

  # A job row as GitLab's worker leaves it, last updated +hours+ ago.
  def job(url, migration, range, status:, attempts:, hours:)
    PG.connect(url) do |c|
      c.exec_params(<<~SQL, [migration, range.first, range.last, status, attempts, hours])
        INSERT INTO batched_background_migration_jobs (created_at, updated_at, started_at, batched_background_migration_id,
          min_value, max_value, batch_size, sub_batch_size, status, attempts, pause_ms)
        VALUES (now() - interval '2 days', now() - make_interval(secs => $6::float8 * 3600), now() - interval '2 days',
                $1, $2, $3, 100, 50, $4, $5, 0)
      SQL
      c.exec_params("UPDATE ci_builds SET done = 1 WHERE id BETWEEN $1 AND $2", [range.first, range.last]) if status == 3
    end
  end

  # A cursor-batched row (GitLab 17.6), min_value/max_value NULL; returns its id. Its min_cursor
  # is a position before the first key, as GitLab's keyset iterator starts after it.
  def cursor_migration(url, batch_class_name: "PrimaryKeyBatchingStrategy", job: "BackfillCiStages")
    PG.connect(url) do |c|
      c.exec_params(<<~SQL, [batch_class_name, job]).getvalue(0, 0).to_i
        INSERT INTO batched_background_migrations (created_at, updated_at, min_value, max_value, min_cursor, max_cursor,
          batch_size, sub_batch_size, "interval", status, job_class_name, batch_class_name, table_name, column_name,
          gitlab_schema, pause_ms)
        VALUES (now(), now(), NULL, NULL, '[0, 100]', '[20, 100]', 100, 8, 120, 1, $2, $1, 'ci_stages', 'id',
                'gitlab_ci', 0)
        RETURNING id
      SQL
    end
  end

  # Every shape at once: finished, active with an orphaned running job (under GitLab's blanket
  # gitlab_main tag), active on an integer key, paused, failed, and a cursor row.
  def seed(url)
    ids = {}
    ids[:finished] = migration(url, "BackfillDone", "projects", status: 3, range: 1..200, tag: "gitlab_main")
    ids[:builds] = migration(url, "IncrementDone", "ci_builds", status: 1, range: 1..300, tag: "gitlab_main")
    job(url, ids[:builds], 1..100, status: 3, attempts: 1, hours: 40)
    job(url, ids[:builds], 101..200, status: 1, attempts: 1, hours: 2)
    ids[:projects] = migration(url, "IncrementDone", "projects", status: 1, range: 1..200, tag: "gitlab_main")
    ids[:paused] = migration(url, "PausedOne", "projects", status: 0, range: 1..200, tag: "gitlab_main")
    ids[:failed] = migration(url, "FailedOne", "ci_builds", status: 4, range: 1..300, tag: "gitlab_ci")
    ids[:cursor] = cursor_migration(url)
    ids
  end

  def tags(url)
    PG.connect(url) do |c|
      c.exec("SELECT id, gitlab_schema FROM batched_background_migrations ORDER BY id").values.to_h.transform_keys(&:to_i)
    end
  end
end

# GitLab's shape of a composite-key job: the fixture's cursor row runs it. It records the cursor
# range each run saw and the rows of each sub-batch.
class BackfillCiStages < SchemaFence::BatchedMigrationJob
  cursor :id, :partition_id
  operation_name :update_all

  class << self
    attr_accessor :seen, :sub_batches
  end

  def perform
    (self.class.seen ||= []) << [start_cursor, end_cursor]
    each_sub_batch { |sub_batch| (self.class.sub_batches ||= []) << sub_batch.update_all("done = done + 1") }
  end
end
