# frozen_string_literal: true

require "pg"
require "timeout"

RSpec.describe "interrupting native calls (Thread#raise, Timeout)", :postgres do
  before { Batches.configure }

  let(:url) { Batches.database("interrupt", name: "main", serves: %w[main ci], rows: 100) }

  def now
    Process.clock_gettime(Process::CLOCK_MONOTONIC)
  end

  def jobs(url, migration_id)
    PG.connect(url) do |c|
      c.exec_params("SELECT status, attempts, metrics->>'error' FROM batched_background_migration_jobs " \
                    "WHERE batched_background_migration_id = $1 ORDER BY id", [migration_id]).values
    end
  end

  # The runner's queries running now; +on_lock+: only those waiting for a lock (the blocked job,
  # not a claim that happens to be running).
  def runner_queries_waiting(url, on_lock: false)
    PG.connect(url) do |c|
      c.exec("SELECT count(*) FROM pg_stat_activity WHERE application_name = 'schema_fence/main/runner' " \
             "AND state = 'active'#{" AND wait_event_type = 'Lock'" if on_lock}").getvalue(0, 0).to_i
    end
  end

  # A SQL job whose statement waits on a row lock another session holds.
  def blocked_sql_job
    SchemaFence.sql_job("InterruptIncrementCiBuilds", "UPDATE ci_builds SET done = done + 1 WHERE id BETWEEN $1 AND $2")
    id = Batches.queue(url, "InterruptIncrementCiBuilds", "ci_builds", :gitlab_ci, batch_size: 100, sub_batch_size: 100)
    blocker = PG.connect(url)
    blocker.exec("BEGIN")
    blocker.exec("SELECT * FROM ci_builds WHERE id = 50 FOR UPDATE")
    [id, blocker]
  end

  it "ends a SQL job blocked on a lock within a second under Timeout, cancelling its query; the batch is retried" do
    id, blocker = blocked_sql_job
    worker = SchemaFence::Worker.new(database: :main, url:)
    started = now
    expect { Timeout.timeout(0.5) { worker.run_once } }.to raise_error(Timeout::Error)
    expect(now - started).to be < 1.5
    expect(runner_queries_waiting(url)).to eq(0)
    blocker.exec("ROLLBACK")
    status, attempts, error = jobs(url, id).first
    expect([status, attempts]).to eq(%w[2 1])
    expect(error).to start_with("interrupted:")

    Batches.drain(worker)
    expect(Batches.done_counts(url, "ci_builds")).to eq([0, 100, 0])
    expect(Batches.status(url, id)).to eq(:finished)
  ensure
    blocker&.close
  end

  it "ends it within a second under Thread#raise of an Interrupt (Sidekiq's shutdown), re-raised" do
    id, blocker = blocked_sql_job
    worker = SchemaFence::Worker.new(database: :main, url:)
    thread = Thread.new { worker.run_once }
    thread.report_on_exception = false
    sleep 0.1 until runner_queries_waiting(url, on_lock: true) == 1
    started = now
    thread.raise(Interrupt, "shutting down")
    expect { thread.join(5) }.to raise_error(Interrupt, "shutting down")
    expect(now - started).to be < 1
    expect(runner_queries_waiting(url)).to eq(0)
    expect(jobs(url, id).first.first(2)).to eq(%w[2 1])
  ensure
    blocker&.close
  end

  it "ends a cutover's drain wait within a second; the step stays unfinished and a later run resumes it" do
    Clusters.with_cluster do |cluster|
      source = cluster.create_database("app")
      PG.connect(source) do |c|
        c.exec("CREATE TABLE ci_builds (id bigint PRIMARY KEY, done int NOT NULL DEFAULT 0)")
        c.exec("INSERT INTO ci_builds (id) SELECT generate_series(1, 100)")
      end
      SchemaFence::Install.up(source, name: "main", serves: %w[main ci])
      Batches.queue(source, "IncrementDone", "ci_builds", :gitlab_ci)
      replica = cluster.replica
      runner = SchemaFence::Runner.new(url: source, database: "main")
      batch = runner.claim_next # a live lease: the drain waits for it
      cutover = SchemaFence::Cutover.new(source_url: source, target_url: replica.url("app"), drain_timeout: 60)
      cutover.run_step(:verify)
      cutover.run_step(:pause)
      started = now
      expect { Timeout.timeout(0.5) { cutover.run_step(:drain) } }.to raise_error(Timeout::Error)
      expect(now - started).to be < 1.5
      expect(cutover.plan.select(&:done).map(&:step)).to eq(%w[verify pause])

      runner.complete(batch, {})
      expect(cutover.run_step(:drain).detail).to eq("no live batch lease")
    ensure
      replica&.stop
    end
  end
end
