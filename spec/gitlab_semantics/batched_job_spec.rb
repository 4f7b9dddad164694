# frozen_string_literal: true

require "pg"

# The behaviours GitLab's spec/lib/gitlab/database/background_migration/batched_job_spec.rb asserts
# of BatchedJob (its states, timestamps, retries, the split on timeout, stuck jobs), on GitLab's
# tables (the fixture's DDL) and this library's claim, completion and failure.
RSpec.describe "GitLab's batched_job_spec.rb, on the claim, completion and failure of a batch", :postgres do
  # Examples share one database: each queues a migration of its own and reads only its jobs.
  before(:all) do
    Batches.configure
    @url = Clusters.fresh_database("gitlab_batched_job")
    GitlabRows.create(@url)
    SchemaFence::Install.up(@url, name: "main", serves: %w[main ci])
  end

  attr_reader :url

  # A migration of ci_builds as GitLab writes it, named after the example so rows never collide.
  def migration(range: [1, 100], batch_size: 100, sub_batch_size: 50)
    @count = (@count || 0) + 1
    job = "Job#{RSpec.current_example.description.hash.abs}x#{@count}"
    GitlabRows.migration(url, job, "ci_builds", status: 1, range:, tag: "gitlab_ci").tap do |id|
      PG.connect(url) do |c|
        c.exec_params("UPDATE batched_background_migrations SET batch_size = $2, sub_batch_size = $3 WHERE id = $1",
                      [id, batch_size, sub_batch_size])
      end
    end
  end

  def runner(stuck_after: 3600)
    SchemaFence::Runner.new(url:, database: "main", stuck_after:)
  end

  # The migration's job rows, in key order.
  def jobs(migration_id)
    PG.connect(url) do |c|
      c.type_map_for_results = PG::BasicTypeMapForResults.new(c)
      c.exec_params(<<~SQL, [migration_id]).to_a
        SELECT status::int, min_value::bigint, max_value::bigint, batch_size, sub_batch_size, attempts,
               started_at IS NOT NULL AS started, finished_at IS NOT NULL AS finished
        FROM batched_background_migration_jobs WHERE batched_background_migration_id = $1 ORDER BY min_value, id
      SQL
    end
  end

  def transitions(migration_id)
    SchemaFence::TransitionLog.recent(url, [migration_id], limit: 20)[migration_id].reverse
  end

  it "run!: a claimed job is running, with started_at set and its attempt counted" do
    id = migration
    runner.claim_migration(id, nil)
    expect(jobs(id)).to eq([{ "status" => 1, "min_value" => 1, "max_value" => 100, "batch_size" => 100,
                              "sub_batch_size" => 50, "attempts" => 1, "started" => true, "finished" => false }])
  end

  it "succeed!: a completed job is succeeded, with finished_at set" do
    id = migration
    r = runner
    r.complete(r.claim_migration(id, nil))
    expect(jobs(id).map { |j| j.values_at("status", "finished") }).to eq([[3, true]])
  end

  it "failure!: a failed job is failed, with finished_at set" do
    id = migration
    r = runner
    r.fail(r.claim_migration(id, nil), "RuntimeError: boom")
    expect(jobs(id).map { |j| j.values_at("status", "finished") }).to eq([[2, true]])
  end

  it "logs every transition, pending to running to succeeded" do
    id = migration
    r = runner
    r.complete(r.claim_migration(id, nil))
    expect(transitions(id).map { |t| [t.previous_status, t.next_status] }).to eq([%i[pending running], %i[running succeeded]])
    expect(transitions(id).last.to_h.values_at(:exception_class, :exception_message)).to eq([nil, nil])
  end

  it "logs a failure with its exception class and message" do
    id = migration
    r = runner
    r.fail(r.claim_migration(id, nil), "ActiveRecord::StatementInvalid: PG::DivisionByZero: division by zero")
    failure = transitions(id).last
    expect([failure.previous_status, failure.next_status]).to eq(%i[running failed])
    expect(failure.exception_class).to eq("ActiveRecord::StatementInvalid")
    expect(failure.exception_message).to eq("PG::DivisionByZero: division by zero")
  end

  it "retriable: a failed job with attempts left is taken again, for the same keys, with one more attempt" do
    id = migration
    r = runner
    r.fail(r.claim_migration(id, nil), "RuntimeError: boom")
    again = r.claim_migration(id, nil)
    expect([again.min_value, again.max_value, again.attempts]).to eq([1, 100, 2])
    expect(jobs(id).size).to eq(1)
  end

  it "MAX_ATTEMPTS is 3: a job that failed three times is not taken again" do
    id = migration
    r = runner
    3.times { r.fail(r.claim_migration(id, nil), "RuntimeError: boom") }
    expect(r.claim_migration(id, nil)).to be_nil
    expect(jobs(id).map { |j| j.values_at("status", "attempts") }).to eq([[2, 3]])
  end

  it "split_and_retry!: a timed-out job becomes two pending jobs of half its keys and size, with fresh attempts" do
    id = migration
    r = runner
    r.fail(r.claim_migration(id, nil), "ActiveRecord::QueryCanceled: canceling statement due to statement timeout",
           timed_out: true)
    expect(jobs(id).map { |j| j.values_at("status", "min_value", "max_value", "batch_size", "attempts") })
      .to eq([[0, 1, 50, 50, 0], [0, 51, 100, 50, 0]])
  end

  it "can_split?: a failure that is not a timeout does not split the job" do
    id = migration
    r = runner
    r.fail(r.claim_migration(id, nil), "RuntimeError: boom")
    expect(jobs(id).map { |j| j.values_at("status", "min_value", "max_value") }).to eq([[2, 1, 100]])
  end

  it "split_and_retry!: a job no larger than its sub-batch is not split, only failed to be retried" do
    id = migration(batch_size: 50, sub_batch_size: 50, range: [1, 50])
    r = runner
    r.fail(r.claim_migration(id, nil), "ActiveRecord::QueryCanceled: canceling statement due to statement timeout",
           timed_out: true)
    expect(jobs(id).map { |j| j.values_at("status", "min_value", "max_value", "attempts") }).to eq([[2, 1, 50, 1]])
  end

  it "split_and_retry!: a job of one key is not split" do
    id = migration(batch_size: 1, sub_batch_size: 1, range: [7, 7])
    r = runner
    r.fail(r.claim_migration(id, nil), "ActiveRecord::QueryCanceled: canceling statement due to statement timeout",
           timed_out: true)
    expect(jobs(id).map { |j| j.values_at("status", "min_value", "max_value") }).to eq([[2, 7, 7]])
  end

  it "stuck: a job left running by GitLab's worker and untouched for an hour is taken again; one touched " \
     "recently is not" do
    stuck = migration
    GitlabRows.job(url, stuck, 1..100, status: 1, attempts: 1, hours: 2)
    recent = migration
    GitlabRows.job(url, recent, 1..100, status: 1, attempts: 1, hours: 0.5)
    r = runner
    expect(r.claim_migration(recent, nil)).to be_nil
    again = r.claim_migration(stuck, nil)
    expect([again.min_value, again.max_value, again.attempts]).to eq([1, 100, 2])
  end

  it "stuck and retriable: a stuck job without attempts left is not taken again" do
    id = migration
    GitlabRows.job(url, id, 1..100, status: 1, attempts: 3, hours: 2)
    expect(runner.claim_migration(id, nil)).to be_nil
  end
end
