# frozen_string_literal: true

require "pg"

# Jobs of the migration files below, written as GitLab writes them.
class BackfillCiBuildsStatusFiles < SchemaFence::BatchedMigrationJob
  operation_name :update_all
  feature_category :continuous_integration

  def perform
    each_sub_batch { |sub_batch| sub_batch.where(status: nil).update_all(status: "created") }
  end
end

class BackfillProjectsColumnFiles < SchemaFence::BatchedMigrationJob
  job_arguments :column
  scope_to ->(relation) { relation.where(done: 0) }

  def perform
    each_sub_batch { |sub_batch| sub_batch.update_all("#{connection.quote_column_name(column)} = 1") }
  end
end

class BackfillCiBuildsPerProjectFiles < SchemaFence::BatchedMigrationJob
  def perform
    distinct_each_batch { |relation| relation.update_all("done = done + 1") }
  end
end

# Batched by a cursor other than the table's primary key (id, partition_id).
class BackfillCiStagesByCursorFiles < SchemaFence::BatchedMigrationJob
  cursor :partition_id, :id
  operation_name :update_all
  feature_category :continuous_integration

  def perform
    each_sub_batch { |sub_batch| sub_batch.update_all("done = done + 1") }
  end
end

# Migration files in GitLab's shapes (constants, milestone, up/down, the finalize helpers): name,
# restriction, body.
module GitlabMigrationFiles
  FILES = [
    ["create_app_tables", nil, <<~RUBY],
      milestone "17.5"

      def up
        execute "ALTER TABLE ci_builds ADD COLUMN status text, ADD COLUMN project_id bigint"
        execute "UPDATE ci_builds SET project_id = id % 9 + 1, status = CASE WHEN id % 3 = 0 THEN 'success' END"
        execute "CREATE INDEX index_ci_builds_on_project_id ON ci_builds (project_id)"
        execute "CREATE TABLE loose_foreign_keys_deleted_records (id bigint PRIMARY KEY, done int NOT NULL DEFAULT 0)"
        execute "INSERT INTO loose_foreign_keys_deleted_records (id) SELECT generate_series(1, 50)"
        execute "INSERT INTO ci_stages (id, partition_id) SELECT i, 101 FROM generate_series(5, 60) i"
        execute "CREATE UNIQUE INDEX index_ci_stages_on_partition_id_and_id ON ci_stages (partition_id, id)"
      end
    RUBY
    ["queue_backfill_ci_builds_status", :gitlab_ci, <<~RUBY],
      milestone "17.6"

      MIGRATION = "BackfillCiBuildsStatusFiles"
      DELAY_INTERVAL = 2.minutes
      BATCH_SIZE = 100
      SUB_BATCH_SIZE = 25

      def up
        queue_batched_background_migration(MIGRATION, :ci_builds, :id, job_interval: DELAY_INTERVAL,
                                           batch_size: BATCH_SIZE, sub_batch_size: SUB_BATCH_SIZE)
      end

      def down
        delete_batched_background_migration(MIGRATION, :ci_builds, :id, [])
      end
    RUBY
    ["queue_backfill_projects_column", :gitlab_main, <<~RUBY],
      milestone "17.6"

      MIGRATION = "BackfillProjectsColumnFiles"

      def up
        queue_batched_background_migration(MIGRATION, :projects, :id, :done, job_interval: 1.minute, batch_size: 50,
                                           sub_batch_size: 10, pause_ms: 0)
      end

      def down
        delete_batched_background_migration(MIGRATION, :projects, :id, [:done])
      end
    RUBY
    ["queue_backfill_ci_builds_per_project", :gitlab_ci, <<~RUBY],
      milestone "17.6"

      def up
        queue_batched_background_migration("BackfillCiBuildsPerProjectFiles", :ci_builds, :project_id,
                                           batch_class_name: "LooseIndexScanBatchingStrategy",
                                           gitlab_schema: :gitlab_ci, batch_size: 3, sub_batch_size: 2, pause_ms: 0)
      end

      def down
        delete_batched_background_migration("BackfillCiBuildsPerProjectFiles", :ci_builds, :project_id, [])
      end
    RUBY
    ["queue_backfill_ci_stages_by_cursor", :gitlab_ci, <<~RUBY],
      milestone "17.7"

      MIGRATION = "BackfillCiStagesByCursorFiles"
      DELAY_INTERVAL = 2.minutes
      BATCH_SIZE = 20
      SUB_BATCH_SIZE = 7

      def up
        queue_batched_background_migration(MIGRATION, :ci_stages, :id, job_interval: DELAY_INTERVAL,
                                           batch_size: BATCH_SIZE, sub_batch_size: SUB_BATCH_SIZE)
      end

      def down
        delete_batched_background_migration(MIGRATION, :ci_stages, :id, [])
      end
    RUBY
    ["queue_prune_lfk_records", :gitlab_shared, <<~RUBY],
      milestone "17.6"

      def up
        queue_batched_background_migration("PruneLfkRecords", :loose_foreign_keys_deleted_records, :id,
                                           job_interval: 2.minutes, batch_min_value: 10, batch_max_value: 40)
      end

      def down
        delete_batched_background_migration("PruneLfkRecords", :loose_foreign_keys_deleted_records, :id, [])
      end
    RUBY
    ["remove_prune_lfk_records", :gitlab_shared, <<~RUBY]
      milestone "17.7"

      def up
        delete_batched_background_migration("PruneLfkRecords", :loose_foreign_keys_deleted_records, :id, [])
      end

      def down; end
    RUBY
  ].freeze
end

# The later files, finishing what the ones above queued.
module GitlabFinalizeFiles
  FILES = [
    ["finalize_backfill_ci_builds_status", :gitlab_ci, <<~RUBY],
      milestone "17.8"
      disable_ddl_transaction!

      def up
        ensure_batched_background_migration_is_finished(job_class_name: "BackfillCiBuildsStatusFiles",
                                                        table_name: :ci_builds, column_name: :id,
                                                        job_arguments: [], finalize: true)
      end

      def down; end
    RUBY
    ["finalize_backfill_projects_column", :gitlab_main, <<~RUBY],
      milestone "17.8"

      def up
        finalize_batched_background_migration(job_class_name: "BackfillProjectsColumnFiles", table_name: :projects,
                                              column_name: :id, job_arguments: [:done])
      end

      def down; end
    RUBY
    ["finalize_backfill_ci_builds_per_project", :gitlab_ci, <<~RUBY],
      milestone "17.8"

      def up
        ensure_batched_background_migration_is_finished(job_class_name: "BackfillCiBuildsPerProjectFiles",
                                                        table_name: :ci_builds, column_name: :project_id,
                                                        job_arguments: [], skip_early_finalization_validation: true)
      end

      def down; end
    RUBY
    ["finalize_backfill_ci_stages_by_cursor", :gitlab_ci, <<~RUBY],
      milestone "17.8"
      disable_ddl_transaction!

      def up
        ensure_batched_background_migration_is_finished(job_class_name: "BackfillCiStagesByCursorFiles",
                                                        table_name: :ci_stages, column_name: :id,
                                                        job_arguments: [], finalize: true)
      end

      def down; end
    RUBY
    ["finalize_old_projects_backfill", :gitlab_main, <<~RUBY],
      milestone "17.8"

      def up
        ensure_batched_background_migration_is_finished(job_class_name: "OldProjectsBackfill", table_name: :projects,
                                                        column_name: :id, job_arguments: [])
      end

      def down; end
    RUBY
    ["finalize_never_queued_here", :gitlab_ci, <<~RUBY]
      milestone "17.8"

      def up
        ensure_batched_background_migration_is_finished(job_class_name: "BackfillFromAnotherInstance",
                                                        table_name: :ci_builds, column_name: :id, job_arguments: [])
      end

      def down; end
    RUBY
  ].freeze
end

# Migration files in GitLab's shapes (constants, milestone, up/down, the finalize helpers), run by
# ActiveRecord's migrator on GitLab's own tracking tables holding GitLab's rows.
RSpec.describe "GitLab-shaped migration files on GitLab's tables", :postgres do
  include_context "with a Rails-like app"

  let(:url) { Clusters.fresh_database("gitlab_files") }

  before do
    app.configure(main: url, ci: url, ci_database_tasks: false)
    SchemaFence.configure { |c| c.dictionary_paths = [GitlabFixtures.path("gitlab_schemas.yml")] }
    GitlabRows.create(url)
    @old = GitlabRows.migration(url, "OldProjectsBackfill", "projects", status: 3, range: 1..200, tag: "gitlab_main")
    GitlabRows.migration(url, "OldCiBuildsBackfill", "ci_builds", status: 3, range: 1..300, tag: "gitlab_main")
  end

  def write_migrations
    (GitlabMigrationFiles::FILES + GitlabFinalizeFiles::FILES).each do |name, restrict, body|
      app.migration(name, body, restrict:)
    end
  end

  def rows
    app.rows(url).to_h { |m| [m.job_class_name, m] }
  end

  it "runs every file unchanged: queues, removes and finalizes, each migration on its own data" do
    write_migrations
    output = nil
    expect { output = app.migrate(:main) }.to output(/1 batched background migration\(s\) carry a gitlab_schema/).to_stderr

    expect(app.versions(url).size).to eq(14)
    expect(output).to include("Could not find batched background migration BackfillFromAnotherInstance")
    expect(rows.transform_values(&:status)).to eq(
      "OldProjectsBackfill" => :finalized, "OldCiBuildsBackfill" => :finished,
      "BackfillCiBuildsStatusFiles" => :finalized, "BackfillProjectsColumnFiles" => :finalized,
      "BackfillCiBuildsPerProjectFiles" => :finalized, "BackfillCiStagesByCursorFiles" => :finalized
    )
    # GitLab's shape of a cursor row: the first and last key in keyset order, min_value/max_value
    # left to the table's defaults.
    expect(rows["BackfillCiStagesByCursorFiles"].to_h)
      .to include(min_cursor: [100, 1], max_cursor: [101, 60], min_value: 1, max_value: nil,
                  gitlab_schema: :gitlab_ci)
    expect(rows.transform_values(&:tag)).to include("BackfillCiBuildsStatusFiles" => :gitlab_ci,
                                                    "BackfillProjectsColumnFiles" => :gitlab_main,
                                                    "OldCiBuildsBackfill" => :gitlab_main)
    expect(rows["BackfillProjectsColumnFiles"].job_arguments).to eq(["done"])
    expect(rows["BackfillCiBuildsStatusFiles"].interval).to eq(120)
    expect(rows["BackfillProjectsColumnFiles"].interval).to eq(120)
    PG.connect(url) do |c|
      expect(c.exec("SELECT count(*) FROM ci_builds WHERE status IS NULL").getvalue(0, 0)).to eq("0")
      expect(c.exec("SELECT count(*) FROM ci_builds WHERE status = 'success'").getvalue(0, 0)).to eq("100")
      expect(c.exec("SELECT DISTINCT done FROM ci_builds").values.flatten).to eq(["1"])
      expect(c.exec("SELECT DISTINCT done FROM projects").values.flatten).to eq(["1"])
      # Every key of the composite-key table once: 20 in partition 100, 56 in 101.
      expect(c.exec("SELECT count(*), min(done), max(done) FROM ci_stages").values.first).to eq(%w[76 1 1])
      jobs = c.exec("SELECT j.min_cursor::text, j.max_cursor::text FROM batched_background_migration_jobs j " \
                    "JOIN batched_background_migrations m ON m.id = j.batched_background_migration_id " \
                    "WHERE m.job_class_name = 'BackfillCiStagesByCursorFiles' ORDER BY j.id").values
      # In keyset order over (partition_id, id): partition 100's 20 keys, then 101's.
      expect(jobs.first).to eq(["[100, 1]", "[100, 20]"])
      expect(jobs.size).to eq(4)
      expect(c.exec("SELECT count(*) FROM batched_background_migrations WHERE job_class_name = 'PruneLfkRecords'")
               .getvalue(0, 0)).to eq("0")
    end
  end
  it "refuses, naming the table and columns and writing nothing, a cursor that is not a unique integer key" do
    app.migration("create_app_tables", GitlabMigrationFiles::FILES.first.last)
    PG.connect(url) do |c|
      c.exec("CREATE TABLE ci_job_artifacts (id bigint NOT NULL, tag_id bigint, name text NOT NULL, PRIMARY KEY (id))")
    end
    refused = {
      "BackfillCiStagesByPartitionFiles" => [%i[partition_id], /no unique index or primary key of ci_stages/],
      "BackfillCiJobArtifactsByNameFiles" => [%i[id name], /ci_job_artifacts\.name is text/],
      "BackfillCiJobArtifactsByTagFiles" => [%i[id tag_id], /ci_job_artifacts\.tag_id may be NULL/],
      "BackfillCiJobArtifactsByMissingFiles" => [%i[id nope], /ci_job_artifacts has no column nope/]
    }
    refused.each do |name, (columns, message)|
      Class.new(SchemaFence::BatchedMigrationJob) { cursor(*columns) }.then { |k| Object.const_set(name, k) }
      table = name.include?("Stages") ? :ci_stages : :ci_job_artifacts
      version = app.migration("queue_#{name.downcase}",
                              "def up\nqueue_batched_background_migration(#{name.inspect}, :#{table}, :id)\nend",
                              restrict: :gitlab_ci)
      expect { app.migrate(:main) }.to raise_error(
        SchemaFence::InvalidArgumentError, /cursor \(#{columns.join(', ')}\) of table #{table}.*#{message.source}/m
      )
      FileUtils.rm(Dir[File.join(app.migrate_dir, "#{version}_*.rb")])
    ensure
      Object.send(:remove_const, name) if Object.const_defined?(name)
    end
    expect(rows.keys).to contain_exactly("OldProjectsBackfill", "OldCiBuildsBackfill")
  end
end
