# frozen_string_literal: true

require "fileutils"
require "pg"
require "rbconfig"
require "tmpdir"

# The split of a ci database out of main, end to end, on throwaway clusters: a source serving
# main and ci with a gitlab_main, a gitlab_ci and a gitlab_shared table, a migration queued on
# each, a streaming replica, a worker process for main (on the source) and one for ci (on the
# replica, idle until the split), and the cutover in the middle of the batches. Used by bin/demo
# and by spec/cutover_spec.rb.
class SplitScenario
  FIXTURES = ENV.fetch("SCHEMA_FENCE_FIXTURES") { File.expand_path("../../shared/fixtures/gitlab", __dir__) }
  TABLES = { "projects" => :gitlab_main, "ci_builds" => :gitlab_ci,
             "loose_foreign_keys_deleted_records" => :gitlab_shared }.freeze
  JOBS = TABLES.keys.to_h { |table| ["Increment#{table.split('_').map(&:capitalize).join}", table] }.freeze

  def self.configure_schema_fence
    SchemaFence.configure do |c|
      c.dictionary_paths = [File.join(FIXTURES, "gitlab_schemas.yml")]
      c.topology_path = File.join(FIXTURES, "database_connections")
    end
  end

  # Every job adds one to `done` of the keys of its sub-batch, so the data says how often each
  # key was processed.
  def self.register_jobs
    JOBS.each do |job, table|
      SchemaFence.sql_job(job, "UPDATE #{table} SET done = done + 1 WHERE id BETWEEN $1 AND $2")
    end
  end

  attr_reader :source_url, :target_url, :rows, :ids, :cutover_outcomes

  def initialize(rows: 200_000, batch_size: 20_000, sub_batch_size: 5_000, pause_ms: 10, interval: 1)
    @rows = rows
    @batch_size = batch_size
    @sub_batch_size = sub_batch_size
    @pause_ms = pause_ms
    # A job interval lets one worker take turns between the migrations, as in production.
    @interval = interval
    @pids = []
    @dir = Dir.mktmpdir("schema_fence-split")
    self.class.configure_schema_fence
  end

  def setup
    @source = SchemaFence::Cluster.start(settings: { synchronous_commit: true })
    @source_url = @source.create_database("app")
    PG.connect(@source_url) do |c|
      TABLES.each_key do |table|
        c.exec("CREATE TABLE #{table} (id bigint PRIMARY KEY, done int NOT NULL DEFAULT 0)")
        c.exec_params("INSERT INTO #{table} (id) SELECT generate_series(1, $1::bigint)", [rows])
      end
    end
    SchemaFence::Install.up(@source_url, name: "main", serves: %w[main ci])
    @ids = JOBS.to_h do |job, table|
      options = [@interval, @batch_size, @sub_batch_size, 1, nil, nil, @pause_ms, nil]
      [table, SchemaFence::Store._queue(@source_url, SchemaFence.dictionary,
                                        [job, table, "id", "[]", TABLES[table].to_s, options])[1]]
    end
    @replica = @source.replica
    @target_url = @replica.url("app")
  end

  def start_workers
    @stop_file = File.join(@dir, "stop")
    script = File.expand_path("worker.rb", __dir__)
    { "main" => @source_url, "ci" => @target_url }.each do |database, url|
      @pids << spawn(RbConfig.ruby, script, url, database, @stop_file, out: File::NULL)
    end
  end

  # Progress and status of each migration on each side: { ["main", "ci_builds"] => [0.4, :active], ... };
  # a row the database no longer serves is :stale.
  def progress
    { "main" => @source_url, "ci" => @target_url }.each_with_object({}) do |(database, url), all|
      SchemaFence::Migrations.on(url).each { |m| all[[database, m.table_name]] = [m.progress, m.stale? ? :stale : m.status] }
    rescue PG::Error, SchemaFence::Error
      next
    end
  end

  def wait_until(timeout:, what:)
    deadline = Process.clock_gettime(Process::CLOCK_MONOTONIC) + timeout
    until yield
      raise "#{what}: not done in #{timeout}s" if Process.clock_gettime(Process::CLOCK_MONOTONIC) > deadline

      sleep 0.05
    end
  end

  # Waits until every migration has done at least +fraction+ of its keys on the source.
  def wait_for_progress(fraction, timeout: 120)
    wait_until(timeout:, what: "progress #{fraction}") do
      TABLES.each_key.all? { |table| (progress[["main", table]]&.first || 0) >= fraction }
    end
  end

  def cutover(&)
    cutover = SchemaFence::Cutover.new(source_url: @source_url, target_url: @target_url,
                                       catch_up_timeout: 30, drain_timeout: 60)
    @cutover_outcomes = cutover.execute(&)
  end

  # Seconds from the start of the pause to the end of the resume.
  def pause_window
    @cutover_outcomes.sum(&:duration)
  end

  def finished?
    expected = { %w[main projects] => :finished, %w[main loose_foreign_keys_deleted_records] => :finished,
                 %w[ci ci_builds] => :finished, %w[ci loose_foreign_keys_deleted_records] => :finished }
    now = progress
    expected.all? { |key, status| now[key]&.last == status }
  end

  def wait_until_finished(timeout: 180)
    wait_until(timeout:, what: "all migrations finished") { finished? }
  end

  def stop_workers
    FileUtils.touch(@stop_file) if @stop_file
    @pids.each do |pid|
      Process.wait(pid)
    rescue Errno::ECHILD
      nil
    end
    @pids.clear
  end

  # [never processed, once, more than once] for +table+ on +url+.
  def counts(url, table)
    PG.connect(url) do |c|
      c.exec("SELECT count(*) FILTER (WHERE done = 0), count(*) FILTER (WHERE done = 1), " \
             "count(*) FILTER (WHERE done > 1) FROM #{table}").values.first.map(&:to_i)
    end
  end

  # Batches claimed after the stamp on a database that no longer serves their tag.
  def batches_on_wrong_database
    wrong = { @source_url => "gitlab_ci", @target_url => "gitlab_main" }
    wrong.sum do |url, tag|
      PG.connect(url) do |c|
        c.exec_params("SELECT count(*) FROM batched_background_migration_jobs j JOIN batched_background_migrations m " \
                      "ON m.id = j.batched_background_migration_id WHERE m.gitlab_schema = $1 AND j.claimed_epoch >= 1",
                      [tag]).getvalue(0, 0).to_i
      end
    end
  end

  # Failed attempts refused by a lock-writes trigger.
  def lock_writes_fired
    [@source_url, @target_url].sum do |url|
      PG.connect(url) do |c|
        c.exec("SELECT count(*) FROM batched_background_migration_jobs WHERE metrics->>'error' LIKE '%write-locked%'")
         .getvalue(0, 0).to_i
      end
    end
  end

  def stale(delete: false)
    { "main" => SchemaFence::Cutover.cleanup(@source_url, delete:),
      "ci" => SchemaFence::Cutover.cleanup(@target_url, delete:) }
  end

  def teardown
    stop_workers
    @replica&.stop
    @source&.stop
    FileUtils.rm_rf(@dir)
  end
end
