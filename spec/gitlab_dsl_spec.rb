# frozen_string_literal: true

require "pg"

# Jobs written the way GitLab writes them.
class GitlabDslScopedJob < SchemaFence::BatchedMigrationJob
  scope_to ->(relation) { relation.where("id % 2 = 0") }
  operation_name :update_all
  feature_category :continuous_integration

  def perform
    each_sub_batch(batching_arguments: { order_hint: :id }) { |sub_batch| sub_batch.update_all("done = done + 1") }
  end
end

# Records each sub-batch's keys and the walks (SELECTs with LIMIT) its batch sent.
class GitlabDslRecordingJob < SchemaFence::BatchedMigrationJob
  class << self
    attr_accessor :sub_batches, :walks
  end

  def perform
    walks = 0
    counter = ActiveSupport::Notifications.subscribe("sql.active_record") do |*, payload|
      walks += 1 if payload[:sql].match?(/\ASELECT.*LIMIT/m)
    end
    each_sub_batch do |sub_batch|
      self.class.sub_batches << sub_batch.pluck(:id).sort
      sub_batch.update_all("done = done + 1")
    end
  ensure
    ActiveSupport::Notifications.unsubscribe(counter)
    self.class.walks << walks
  end
end

class GitlabDslDistinctJob < SchemaFence::BatchedMigrationJob
  def perform
    distinct_each_batch { |relation| relation.update_all("done = done + 1") }
  end
end

class GitlabDslTwoArgumentsJob < SchemaFence::BatchedMigrationJob
  job_arguments :from, :to

  def perform; end
end

class GitlabDslCursorJob < SchemaFence::BatchedMigrationJob
  cursor :id, :partition_id

  def perform; end
end

RSpec.describe "GitLab's migration DSL and job macros", :postgres do
  include_context "with a Rails-like app"

  let(:url) { Clusters.fresh_database("gitlab_dsl") }

  before do
    app.configure(main: url, ci: url, ci_database_tasks: false)
    app.migration("create_tables", <<~RUBY)
      def up
        execute "CREATE TABLE ci_builds (id bigint PRIMARY KEY, project_id bigint NOT NULL, done int NOT NULL DEFAULT 0)"
        execute "INSERT INTO ci_builds (id, project_id) SELECT i, i % 7 + 1 FROM generate_series(1, 200) i"
        execute "CREATE INDEX ON ci_builds (project_id)"
        execute "CREATE TABLE projects (id integer PRIMARY KEY, done int NOT NULL DEFAULT 0)"
        execute "INSERT INTO projects (id) SELECT generate_series(1, 100)"
      end
    RUBY
    app.migrate(:main)
  end

  # Each step is a migration of its own; a failed one is removed, as an engineer would.
  def migrate(restrict, body)
    version = app.migration("step_#{@step = (@step || 0) + 1}", "def up\n#{body}\nend", restrict:)
    app.migrate(:main)
  rescue StandardError
    FileUtils.rm(Dir[File.join(app.migrate_dir, "#{version}_*.rb")])
    raise
  end

  def row(job_class_name)
    app.rows(url).find { |m| m.job_class_name == job_class_name }
  end

  def done(table)
    PG.connect(url) { |c| c.exec("SELECT id, done FROM #{table} ORDER BY id").values.to_h { |i, d| [i.to_i, d.to_i] } }
  end

  it "stores symbol job arguments, and symbol keys, as strings" do
    migrate(:gitlab_ci, 'queue_batched_background_migration("A", :ci_builds, :id, :name, { key: :value })')
    expect(row("A").job_arguments).to eq(["name", { "key" => "value" }])
  end

  it "defaults job_interval to GitLab's 2 minutes and raises a shorter one to it" do
    migrate(:gitlab_ci, <<~RUBY)
      queue_batched_background_migration("Omitted", :ci_builds, :id)
      queue_batched_background_migration("Short", :ci_builds, :id, job_interval: 30)
      queue_batched_background_migration("Long", :ci_builds, :id, job_interval: 600)
    RUBY
    expect(%w[Omitted Short Long].map { |name| row(name).interval }).to eq([120, 120, 600])
  end

  it "stores batch_class_name and batches a loose index scan over the distinct values of the column" do
    migrate(:gitlab_ci, <<~RUBY)
      queue_batched_background_migration("GitlabDslDistinctJob", :ci_builds, :project_id,
                                         batch_class_name: "LooseIndexScanBatchingStrategy", batch_size: 2,
                                         sub_batch_size: 1, pause_ms: 0)
    RUBY
    expect(row("GitlabDslDistinctJob").batch_class_name).to eq("LooseIndexScanBatchingStrategy")
    migrate(:gitlab_ci, <<~RUBY)
      ensure_batched_background_migration_is_finished(job_class_name: "GitlabDslDistinctJob", table_name: :ci_builds,
                                                      column_name: :project_id, job_arguments: [])
    RUBY
    expect(row("GitlabDslDistinctJob").status).to eq(:finalized)
    expect(done("ci_builds").values.uniq).to eq([1])
    expect(row("GitlabDslDistinctJob").jobs_succeeded).to eq(4) # 7 distinct values, 2 a batch
  end

  it "runs the sub-batches of a batch whose keys are all there without walking them again" do
    GitlabDslRecordingJob.sub_batches = []
    GitlabDslRecordingJob.walks = []
    PG.connect(url) { |c| c.exec("DELETE FROM projects WHERE id BETWEEN 41 AND 50") }
    migrate(:gitlab_main, <<~RUBY)
      queue_batched_background_migration("GitlabDslRecordingJob", :projects, :id, batch_size: 30, sub_batch_size: 10,
                                                                                  pause_ms: 0)
    RUBY
    migrate(:gitlab_main, <<~RUBY)
      ensure_batched_background_migration_is_finished(job_class_name: "GitlabDslRecordingJob", table_name: :projects,
                                                      column_name: :id, job_arguments: [])
    RUBY
    expect(done("projects").values.uniq).to eq([1])
    expect(GitlabDslRecordingJob.sub_batches.map(&:size)).to eq([10] * 9)
    expect(GitlabDslRecordingJob.sub_batches.flatten).to eq((1..40).to_a + (51..100).to_a)
    # Batches 1..30 and 71..100 are dense: no walk; 31..70 misses 41..50: two walks per sub-batch.
    expect(GitlabDslRecordingJob.walks).to eq([0, 6, 0])
  end

  it "refuses a batch_class_name it does not run, naming the ones it does" do
    expect do
      migrate(:gitlab_ci, 'queue_batched_background_migration("A", :ci_builds, :id, batch_class_name: "Nope")')
    end.to raise_error(SchemaFence::InvalidArgumentError, /"Nope".*PrimaryKeyBatchingStrategy, LooseIndexScanBatchingStrategy/)
    expect(app.rows(url)).to be_empty
  end

  it "takes gitlab_schema: when it is the tag the restriction and the table give, and refuses another" do
    migrate(:gitlab_ci, 'queue_batched_background_migration("A", :ci_builds, :id, gitlab_schema: :gitlab_ci)')
    expect(row("A").tag).to eq(:gitlab_ci)
    expect do
      migrate(:gitlab_ci, 'queue_batched_background_migration("B", :ci_builds, :id, gitlab_schema: :gitlab_main)')
    end.to raise_error(SchemaFence::InvalidArgumentError, /gitlab_main was given.*gitlab_ci/)
  end

  it "checks the number of job arguments against the job class when queueing" do
    expect do
      migrate(:gitlab_ci, 'queue_batched_background_migration("GitlabDslTwoArgumentsJob", :ci_builds, :id, 1)')
    end.to raise_error(SchemaFence::InvalidJobArgumentsError, /GitlabDslTwoArgumentsJob \(given 1, expected 2/)
    migrate(:gitlab_ci, 'queue_batched_background_migration("GitlabDslTwoArgumentsJob", :ci_builds, :id, 1, 2)')
    expect(row("GitlabDslTwoArgumentsJob").job_arguments).to eq([1, 2])
  end

  it "refuses to queue a job class batched by cursor over columns the table does not have" do
    expect { migrate(:gitlab_ci, 'queue_batched_background_migration("GitlabDslCursorJob", :ci_builds, :id)') }
      .to raise_error(SchemaFence::InvalidArgumentError,
                      /cursor \(id, partition_id\) of table ci_builds: ci_builds has no column partition_id/)
    expect(app.rows(url)).to be_empty
  end

  it "narrows every batch with scope_to and accepts GitLab's batching_arguments" do
    migrate(:gitlab_main, <<~RUBY)
      queue_batched_background_migration("GitlabDslScopedJob", :projects, :id, batch_size: 30, sub_batch_size: 10,
                                         pause_ms: 0)
    RUBY
    migrate(:gitlab_main, <<~RUBY)
      finalize_batched_background_migration(job_class_name: "GitlabDslScopedJob", table_name: :projects,
                                            column_name: :id, job_arguments: [])
    RUBY
    expect(done("projects").select { |id, _| id.even? }.values.uniq).to eq([1])
    expect(done("projects").select { |id, _| id.odd? }.values.uniq).to eq([0])
    expect(GitlabDslScopedJob.feature_category).to eq(:continuous_integration)
  end

  it "finalize_batched_background_migration runs what is left here and marks it finalized" do
    migrate(:gitlab_main, 'queue_batched_background_migration("GitlabDslScopedJob", :projects, :id, pause_ms: 0)')
    output = migrate(:gitlab_main, <<~RUBY)
      finalize_batched_background_migration(job_class_name: "GitlabDslScopedJob", table_name: :projects,
                                            column_name: :id, job_arguments: [])
    RUBY
    expect(output).to include("Finalizing batched background migration")
    expect(row("GitlabDslScopedJob").status).to eq(:finalized)
  end

  it "finalize_batched_background_migration raises for a migration that was never queued" do
    expect do
      migrate(:gitlab_main, <<~RUBY)
        finalize_batched_background_migration(job_class_name: "Never", table_name: :projects, column_name: :id,
                                              job_arguments: [])
      RUBY
    end.to raise_error(SchemaFence::MigrationNotFinishedError, /could not find.*Never/)
  end

  it "ensure_batched_background_migration_is_finished warns and goes on for a migration never queued here" do
    events = []
    subscriber = ActiveSupport::Notifications.subscribe("migration_not_found.schema_fence") { |e| events << e.payload }
    output = migrate(:gitlab_main, <<~RUBY)
      ensure_batched_background_migration_is_finished(job_class_name: "Never", table_name: :projects,
                                                      column_name: :id, job_arguments: [],
                                                      skip_early_finalization_validation: true)
    RUBY
    expect(output).to include("Could not find batched background migration Never on projects.id")
    expect(events.map { |p| p.slice(:job_class_name, :table_name) })
      .to eq([{ job_class_name: "Never", table_name: "projects" }])
  ensure
    ActiveSupport::Notifications.unsubscribe(subscriber)
  end

  it "ensure_batched_background_migration_is_finished marks a finished migration finalized" do
    PG.connect(url) { |c| c.exec("DELETE FROM projects") }
    migrate(:gitlab_main, 'queue_batched_background_migration("A", :projects, :id)')
    expect(row("A").status).to eq(:finished)
    migrate(:gitlab_main, <<~RUBY)
      ensure_batched_background_migration_is_finished(job_class_name: "A", table_name: :projects, column_name: :id,
                                                      job_arguments: [])
    RUBY
    expect(row("A").status).to eq(:finalized)
  end

  it "records a migration's milestone" do
    migration = Class.new(ActiveRecord::Migration[6.1]) do
      include SchemaFence::MigrationHelpers
      milestone "17.6"
    end
    expect(migration.milestone).to eq("17.6")
    expect(Class.new(migration).milestone).to eq("17.6")
  end
end
