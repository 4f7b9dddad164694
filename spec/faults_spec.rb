# frozen_string_literal: true

require "rbconfig"

RSpec.describe "workers under races and crashes", :postgres do
  before { Batches.configure }

  let(:worker_script) { File.expand_path("fixtures/worker_process.rb", __dir__) }

  def spawn_worker(url, lease: 30, idle: 2, env: {})
    spawn(env, RbConfig.ruby, worker_script, url, "ci", lease.to_s, idle.to_s, out: File::NULL, err: $stderr)
  end

  def wait_all(pids, timeout: 120)
    deadline = Process.clock_gettime(Process::CLOCK_MONOTONIC) + timeout
    pids.map do |pid|
      loop do
        _, status = Process.wait2(pid, Process::WNOHANG)
        break status if status
        raise "worker #{pid} did not finish in #{timeout}s" if Process.clock_gettime(Process::CLOCK_MONOTONIC) > deadline

        sleep 0.05
      end
    end
  end

  def overlapping_jobs(url)
    PG.connect(url) do |c|
      c.exec(<<~SQL).getvalue(0, 0).to_i
        SELECT count(*) FROM batched_background_migration_jobs a
        JOIN batched_background_migration_jobs b
          ON a.batched_background_migration_id = b.batched_background_migration_id AND a.id < b.id
         AND a.min_value <= b.max_value AND b.min_value <= a.max_value
      SQL
    end
  end

  it "four worker processes on one database process every key exactly once and claim no batch twice" do
    url = Batches.database("race", name: "ci", serves: %w[ci], rows: 20_000)
    sql_id = Batches.queue(url, "SqlIncrementCiBuilds", "ci_builds", :gitlab_ci, batch_size: 250, sub_batch_size: 125)
    statuses = wait_all(Array.new(4) { spawn_worker(url) })
    expect(statuses.map(&:exitstatus)).to eq([0, 0, 0, 0])
    expect(Batches.status(url, sql_id)).to eq(:finished)
    expect(Batches.done_counts(url, "ci_builds")).to eq([0, 20_000, 0])
    expect(overlapping_jobs(url)).to eq(0)
    attempts = PG.connect(url) do |c|
      c.exec("SELECT max(attempts), count(*) FROM batched_background_migration_jobs").values.first
    end
    expect(attempts).to eq(%w[1 80])
  end

  it "redoes the batch of a worker killed with SIGKILL once its lease expires, and finishes" do
    url = Batches.database("sigkill", name: "ci", serves: %w[ci], rows: 600)
    id = Batches.queue(url, "SlowIncrement", "ci_builds", :gitlab_ci, batch_size: 200, sub_batch_size: 50)
    marker = File.join(Dir.mktmpdir("schema_fence-kill"), "claimed")
    victim = spawn_worker(url, lease: 1, env: { "SCHEMA_FENCE_SLOW_MARKER" => marker })
    sleep 0.05 until File.exist?(marker) && !File.read(marker).empty?
    _, first, last = File.read(marker).split.map(&:to_i)
    Process.kill(:KILL, victim)
    Process.wait(victim)

    expect(wait_all([spawn_worker(url, lease: 1, idle: 3)]).map(&:exitstatus)).to eq([0])
    expect(Batches.status(url, id)).to eq(:finished)
    counts = PG.connect(url) { |c| c.exec("SELECT id, done FROM ci_builds").values.to_h { |k, d| [k.to_i, d.to_i] } }
    expect(counts.values).not_to include(0)
    outside = counts.reject { |key, _| key.between?(first, last) }
    expect(outside.values.uniq).to eq([1])
    redone = PG.connect(url) do |c|
      c.exec_params("SELECT attempts FROM batched_background_migration_jobs WHERE min_value = $1", [first]).getvalue(0, 0)
    end
    expect(redone).to eq("2")
  end

  it "reconnects after the PostgreSQL server restarts in the middle of a run, and finishes" do
    Clusters.with_cluster(settings: { synchronous_commit: true }) do |cluster|
      url = cluster.create_database("restart")
      PG.connect(url) do |c|
        c.exec("CREATE TABLE ci_builds (id bigint PRIMARY KEY, done int NOT NULL DEFAULT 0)")
        c.exec("INSERT INTO ci_builds (id) SELECT generate_series(1, 5000)")
      end
      SchemaFence::Install.up(url, name: "ci", serves: ["ci"])
      id = SchemaFence::Store.queue(url, job_class_name: "SqlIncrementCiBuilds", table_name: "ci_builds",
                                         column_name: "id", restriction: "gitlab_ci", job_interval: 0,
                                         batch_size: 100, sub_batch_size: 50, pause_ms: 20).id
      pid = spawn_worker(url, lease: 2, idle: 4)
      sleep 0.05 until Batches.done_counts(url, "ci_builds")[1] > 500
      cluster.restart
      expect(wait_all([pid]).map(&:exitstatus)).to eq([0])
      expect(Batches.status(url, id)).to eq(:finished)
      expect(Batches.done_counts(url, "ci_builds").first).to eq(0)
    end
  end
end
