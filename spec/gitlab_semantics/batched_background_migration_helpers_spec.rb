# frozen_string_literal: true

require "pg"

# A job class that declares no job arguments: GitLab expects none of it.
class GitlabHelpersNoArgumentsJob < SchemaFence::BatchedMigrationJob
  def perform; end
end

# The behaviours GitLab's spec/lib/gitlab/database/migrations/batched_background_migration_helpers_spec.rb
# asserts of queue_batched_background_migration, finalize_batched_background_migration,
# delete_batched_background_migration and ensure_batched_background_migration_is_finished, in
# migrations run by ActiveRecord on GitLab's tables (the fixture's DDL).
RSpec.describe "GitLab's batched_background_migration_helpers_spec.rb, in migrations on GitLab's tables", :postgres do
  include_context "with a Rails-like app"

  let(:url) { Clusters.fresh_database("gitlab_migration_helpers").tap { |u| GitlabRows.create(u) } }

  before do
    app.configure(main: url, ci: url, ci_database_tasks: false)
    app.migrate(:main) # the install, on GitLab's tables as they are
  end

  # Each step is a migration of its own; a failed one is removed, as an engineer would.
  def migrate(restrict, body)
    version = app.migration("step_#{@step = (@step || 0) + 1}", "def up\n#{body}\nend", restrict:)
    app.migrate(:main)
  rescue StandardError
    FileUtils.rm(Dir[File.join(app.migrate_dir, "#{version}_*.rb")])
    raise
  end

  def stored(job_class_name)
    PG.connect(url) do |c|
      c.type_map_for_results = PG::BasicTypeMapForResults.new(c)
      c.exec_params(<<~SQL, [job_class_name]).to_a
        SELECT job_class_name, table_name, column_name, "interval", min_value::bigint, max_value::bigint,
               batch_class_name, batch_size, sub_batch_size, max_batch_size, pause_ms, job_arguments::text,
               status, gitlab_schema, created_at IS NOT NULL AND updated_at IS NOT NULL AS timestamps
        FROM batched_background_migrations WHERE job_class_name = $1 ORDER BY id
      SQL
    end
  end

  it "creates the migration with every option it was given, active, tagged and timestamped" do
    migrate(:gitlab_ci, <<~RUBY)
      queue_batched_background_migration("CopyBuilds", :ci_builds, :id, "name", 7, job_interval: 300,
                                         batch_min_value: 5, batch_max_value: 250, batch_size: 40, sub_batch_size: 8,
                                         max_batch_size: 400, pause_ms: 25,
                                         batch_class_name: "PrimaryKeyBatchingStrategy")
    RUBY
    expect(stored("CopyBuilds")).to eq(
      [{ "job_class_name" => "CopyBuilds", "table_name" => "ci_builds", "column_name" => "id", "interval" => 300,
         "min_value" => 5, "max_value" => 250, "batch_class_name" => "PrimaryKeyBatchingStrategy", "batch_size" => 40,
         "sub_batch_size" => 8, "max_batch_size" => 400, "pause_ms" => 25, "job_arguments" => '["name", 7]',
         "status" => 1, "gitlab_schema" => "gitlab_ci", "timestamps" => true }]
    )
  end

  it "does not create a duplicate when the same migration is queued again; other job arguments make another" do
    migrate(:gitlab_ci, <<~RUBY)
      queue_batched_background_migration("CopyBuilds", :ci_builds, :id, 1)
      queue_batched_background_migration("CopyBuilds", :ci_builds, :id, 1)
      queue_batched_background_migration("CopyBuilds", :ci_builds, :id, 2)
    RUBY
    expect(stored("CopyBuilds").map { |m| m["job_arguments"] }).to eq(%w[[1] [2]])
  end

  it "raises a job_interval under 2 minutes to 2 minutes" do
    migrate(:gitlab_ci, 'queue_batched_background_migration("CopyBuilds", :ci_builds, :id, job_interval: 1)')
    expect(stored("CopyBuilds").first["interval"]).to eq(120)
  end

  it "without batch_max_value, batches up to the table's current maximum, from 1" do
    migrate(:gitlab_main, 'queue_batched_background_migration("CopyProjects", :projects, :id)')
    expect(stored("CopyProjects").first.values_at("min_value", "max_value", "status")).to eq([1, 200, 1])
  end

  it "on an empty table, creates the migration finished, its max value the min value" do
    PG.connect(url) { |c| c.exec("DELETE FROM projects") }
    migrate(:gitlab_main, 'queue_batched_background_migration("CopyProjects", :projects, :id)')
    expect(stored("CopyProjects").first.values_at("status", "min_value", "max_value")).to eq([3, 1, 1])
  end

  it "raises for a wrong number of job arguments (none for a job class that declares none), queueing nothing" do
    expect do
      migrate(:gitlab_ci, 'queue_batched_background_migration("GitlabHelpersNoArgumentsJob", :ci_builds, :id, 1)')
    end.to raise_error(SchemaFence::InvalidJobArgumentsError, /GitlabHelpersNoArgumentsJob \(given 1, expected 0/)
    expect(stored("GitlabHelpersNoArgumentsJob")).to be_empty
  end

  # A difference on purpose: GitLab tags a migration without restrict_gitlab_migration gitlab_main.
  it "refuses to queue without restrict_gitlab_migration (GitLab: tags it gitlab_main)" do
    expect { migrate(nil, 'queue_batched_background_migration("CopyBuilds", :ci_builds, :id)') }
      .to raise_error(SchemaFence::MissingSchemaRestrictionError)
    expect(stored("CopyBuilds")).to be_empty
  end

  it "delete_batched_background_migration deletes the migration of that configuration only, and nothing when " \
     "none matches" do
    migrate(:gitlab_ci, <<~RUBY)
      queue_batched_background_migration("CopyBuilds", :ci_builds, :id, [:id], [:id_convert_to_bigint])
      queue_batched_background_migration("CopyBuilds", :ci_builds, :id, [:id], [:other])
      raise "deleted another" unless delete_batched_background_migration("Other", :ci_builds, :id, [[:id], [:other]]).zero?
      deleted = delete_batched_background_migration("CopyBuilds", :ci_builds, :id, [[:id], [:id_convert_to_bigint]])
      raise "not deleted" unless deleted == 1
    RUBY
    expect(stored("CopyBuilds").map { |m| m["job_arguments"] }).to eq(['[["id"], ["other"]]'])
  end

  it "finalize_batched_background_migration runs the remaining batches here, every key once, and finalizes it" do
    migrate(:gitlab_ci, <<~RUBY)
      queue_batched_background_migration("IncrementDone", :ci_builds, :id, batch_size: 100, sub_batch_size: 50,
                                         pause_ms: 0)
    RUBY
    migrate(:gitlab_ci, <<~RUBY)
      finalize_batched_background_migration(job_class_name: "IncrementDone", table_name: :ci_builds,
                                            column_name: :id, job_arguments: [])
    RUBY
    expect(stored("IncrementDone").first["status"]).to eq(6)
    expect(Batches.done_counts(url, "ci_builds")).to eq([0, 300, 0])
  end

  # A difference on purpose: GitLab does not find it ("Could not find"); here the table of another
  # gitlab_schema than the restriction's is refused, as at queue time.
  it "finalize_batched_background_migration finds only the migrations of its restriction's schema " \
     "(here: refuses a table of another schema, naming both)" do
    migrate(:gitlab_ci, 'queue_batched_background_migration("IncrementDone", :ci_builds, :id)')
    expect do
      migrate(:gitlab_main, <<~RUBY)
        finalize_batched_background_migration(job_class_name: "IncrementDone", table_name: :ci_builds,
                                              column_name: :id, job_arguments: [])
      RUBY
    end.to raise_error(SchemaFence::SchemaMismatchError, /"ci_builds" is gitlab_ci.*gitlab_main/)
    expect(stored("IncrementDone").first["status"]).to eq(1)
  end

  it "ensure_batched_background_migration_is_finished warns and returns for a migration not queued here" do
    output = migrate(:gitlab_ci, <<~RUBY)
      ensure_batched_background_migration_is_finished(job_class_name: "Never", table_name: :ci_builds,
                                                      column_name: :id, job_arguments: [])
    RUBY
    expect(output).to include("Could not find batched background migration Never on ci_builds.id")
  end
end
