# frozen_string_literal: true

require "pg"

# The behaviours GitLab's spec/lib/gitlab/database/background_migration/batched_migration_runner_spec.rb
# asserts of BatchedMigrationRunner (the next batch's range, the end of a migration, finalize), on
# GitLab's tables (the fixture's DDL) and this library's claim and worker.
RSpec.describe "GitLab's batched_migration_runner_spec.rb, on the claim and the worker", :postgres do
  before(:all) do
    Batches.configure
    @url = Clusters.fresh_database("gitlab_migration_runner")
    GitlabRows.create(@url)
    SchemaFence::Install.up(@url, name: "main", serves: %w[main ci])
  end

  attr_reader :url

  # A migration of ci_builds (keys 1..300) as GitLab writes it; its id as its job argument keeps rows apart.
  def migration(range:, batch_size:, status: 1)
    id = GitlabRows.migration(url, "IncrementDone", "ci_builds", status:, range:, tag: "gitlab_ci")
    PG.connect(url) do |c|
      c.exec_params("UPDATE batched_background_migrations SET batch_size = $2, sub_batch_size = 10, pause_ms = 5, " \
                    "job_arguments = jsonb_build_array($1::bigint) WHERE id = $1", [id, batch_size])
    end
    id
  end

  def runner = @runner ||= SchemaFence::Runner.new(url:, database: "main")

  def job_count(id)
    PG.connect(url) do |c|
      c.exec_params("SELECT count(*) FROM batched_background_migration_jobs WHERE batched_background_migration_id = $1",
                    [id]).getvalue(0, 0).to_i
    end
  end

  it "starts the first batch at min_value, batch_size keys long, with the migration's sub-batch size and pause" do
    batch = runner.claim_migration(migration(range: [11, 300], batch_size: 40), nil)
    expect([batch.min_value, batch.max_value, batch.batch_size, batch.sub_batch_size, batch.pause_ms])
      .to eq([11, 50, 40, 10, 5])
  end

  it "starts the next batch after the end of the previous one" do
    id = migration(range: [1, 300], batch_size: 40)
    runner.complete(runner.claim_migration(id, nil))
    batch = runner.claim_migration(id, nil)
    expect([batch.min_value, batch.max_value]).to eq([41, 80])
  end

  it "never ends a batch past max_value, and finishes the migration with its last batch" do
    id = migration(range: [1, 90], batch_size: 40)
    ranges = []
    completions = []
    while (batch = runner.claim_migration(id, nil))
      ranges << [batch.min_value, batch.max_value]
      completions << runner.complete(batch)
    end
    expect(ranges).to eq([[1, 40], [41, 80], [81, 90]])
    expect(completions.last).to eq(:migration_finished)
    expect(Batches.status(url, id)).to eq(:finished)
  end

  it "creates no job when no key is left" do
    id = migration(range: [1, 40], batch_size: 40)
    runner.complete(runner.claim_migration(id, nil))
    expect(runner.claim_migration(id, nil)).to be_nil
    expect(job_count(id)).to eq(1)
  end

  it "creates no job and marks the migration finished when the next batch would start past max_value" do
    id = migration(range: [1, 300], batch_size: 40)
    runner.complete(runner.claim_migration(id, nil))
    PG.connect(url) { |c| c.exec_params("UPDATE batched_background_migrations SET max_value = 30 WHERE id = $1", [id]) }
    expect(runner.claim_migration(id, nil)).to be_nil
    expect(job_count(id)).to eq(1)
    expect(Batches.status(url, id)).to eq(:finished)
  end

  it "runs no batch of a migration that is not active" do
    id = migration(range: [1, 40], batch_size: 40, status: 0)
    outcome = SchemaFence::Worker.new(database: :main, url:).run_migration_batch(id)
    expect(outcome.status).to eq(:nothing)
    expect(job_count(id)).to eq(0)
  end

  it "run_entire_migration: finalize runs every batch inline, each key once, and the migration is finished" do
    PG.connect(url) { |c| c.exec("UPDATE ci_builds SET done = 0 WHERE id BETWEEN 201 AND 300") }
    id = migration(range: [201, 300], batch_size: 30)
    expect(SchemaFence::Worker.new(database: :main, url:).finish(id)).to eq(:finished)
    done = PG.connect(url) { |c| c.exec("SELECT done FROM ci_builds WHERE id BETWEEN 201 AND 300").column_values(0) }
    expect(done.uniq).to eq(["1"])
    expect(job_count(id)).to eq(4)
  end

  it "run_entire_migration: leaves a migration that is not active as it is" do
    id = migration(range: [1, 40], batch_size: 40, status: 0)
    expect(SchemaFence::Worker.new(database: :main, url:).finish(id)).to eq(:paused)
    expect(job_count(id)).to eq(0)
  end
end
