# frozen_string_literal: true

require "fileutils"
require "pg"
require_relative "../lib/schema_fence/testing"
require "rbconfig"
require "tmpdir"
require "yaml"
require_relative "split_verdict"
require_relative "split_application"
require_relative "split_cutover"

# The split of a ci database out of main, end to end, on throwaway clusters: a source serving
# main and ci with a gitlab_main, a gitlab_ci and a gitlab_shared table, a migration queued on
# each, a streaming replica, a worker process for main (on the source) and one for ci (on the
# replica, idle until the split), and the cutover in the middle of the batches. Used by bin/demo
# and by spec/cutover_spec.rb.
class SplitScenario
  include SplitVerdict
  include SplitApplication
  include SplitCutover

  FIXTURES = ENV.fetch("SCHEMA_FENCE_FIXTURES") { File.expand_path("../../shared/fixtures/gitlab", __dir__) }
  # table => [gitlab_schema, kind of job]: each gitlab_schema has a migration with a SQL job and
  # one with a Ruby job. sec's tables stay on main when ci splits off.
  PLAN = {
    "projects" => %i[gitlab_main sql], "namespaces" => %i[gitlab_main ruby],
    "ci_builds" => %i[gitlab_ci sql], "ci_pipelines" => %i[gitlab_ci ruby],
    "analyzer_project_statuses" => %i[gitlab_sec sql], "analyzer_namespace_statuses" => %i[gitlab_sec ruby],
    "loose_foreign_keys_deleted_records" => %i[gitlab_shared sql], "detached_partitions" => %i[gitlab_shared ruby]
  }.freeze
  TABLES = PLAN.transform_values(&:first).freeze
  RUBY_JOB = "SplitScenario::IncrementRows"
  # table => the job class name its migration is queued with.
  JOBS = PLAN.to_h do |table, (_, kind)|
    [table, kind == :ruby ? RUBY_JOB : "Increment#{table.split('_').map(&:capitalize).join}"]
  end.freeze
  # The tables the application writer writes: a ci table that moves, and a sec table that stays.
  WRITTEN = { ci: "ci_job_artifacts", sec: "analyzer_project_statuses" }.freeze

  # GitLab's three databases (ci and sec fall back to main) and GitLab's table map, with the
  # gitlab_sec tables of GitLab's db/docs (written out once per process).
  def self.configure_schema_fence
    SchemaFence.configure do |c|
      c.dictionary_paths = [File.join(FIXTURES, "gitlab_schemas.yml"), sec_docs]
      c.topology_path = File.join(FIXTURES, "database_connections_with_sec")
    end
  end

  def self.sec_docs
    @sec_docs ||= begin
      dir = Dir.mktmpdir("schema_fence-sec-docs")
      at_exit { FileUtils.rm_rf(dir) }
      File.foreach(File.join(FIXTURES, "db_docs_tables.tsv")).drop(1).each do |line|
        table, schema = line.chomp.split("\t")
        next unless schema == "gitlab_sec"

        File.write(File.join(dir, "#{table}.yml"), { "table_name" => table, "gitlab_schema" => schema }.to_yaml)
      end
      dir
    end
  end

  # Every job adds one to `done` of the keys of its sub-batch, so the data says how often each
  # key was processed. SQL jobs run in Rust; the Ruby job (IncrementRows) on ActiveRecord.
  def self.register_jobs
    JOBS.each do |table, job|
      next if job == RUBY_JOB

      SchemaFence.sql_job(job, "UPDATE #{table} SET done = done + 1 WHERE id BETWEEN $1 AND $2")
    end
    require_relative "increment_rows"
  end

  # [database, table] for each copy of a table whose migration that database must finish after
  # the split: main's and sec's tables on main, ci's on ci, the shared ones on both.
  def self.owned
    TABLES.flat_map do |table, schema|
      case schema
      when :gitlab_ci then [["ci", table]]
      when :gitlab_shared then [["main", table], ["ci", table]]
      else [["main", table]]
      end
    end
  end

  attr_reader :source_url, :target_url, :rows, :ids

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
        # `written` is the application writer's (sec keeps being written through the cutover).
        c.exec("CREATE TABLE #{table} (id bigint PRIMARY KEY, done int NOT NULL DEFAULT 0, " \
               "written int NOT NULL DEFAULT 0)")
        c.exec_params("INSERT INTO #{table} (id) SELECT generate_series(1, $1::bigint)", [rows])
      end
      c.exec("CREATE TABLE #{WRITTEN[:ci]} (id bigint PRIMARY KEY, acknowledged_by text NOT NULL)")
    end
    SchemaFence::Install.up(@source_url, name: "main", serves: %w[main ci sec])
    @ids = JOBS.to_h do |table, job|
      [table, SchemaFence::Store.queue(@source_url, job_class_name: job, table_name: table, column_name: "id",
                                                    restriction: TABLES[table], job_interval: @interval,
                                                    batch_size: @batch_size, sub_batch_size: @sub_batch_size,
                                                    pause_ms: @pause_ms).id]
    end
    @replica = @source.replica
    @target_url = @replica.url("app")
  end

  # Two worker processes, each serving every database as a Sidekiq process of the app does: main
  # and sec on the source, ci on the replica (idle until the split; sec idles on main, which covers
  # its schemas).
  def start_workers
    @stop_file = File.join(@dir, "stop")
    # The workers' ci connection reaches the replica; the operator re-points it after a rollback.
    @workers_ci_connection = File.join(@dir, "workers_ci_connection")
    File.write(@workers_ci_connection, @target_url)
    script = File.expand_path("worker.rb", __dir__)
    2.times do |i|
      log = File.join(@dir, "worker-#{i}.log")
      @pids << spawn(RbConfig.ruby, script, @source_url, @workers_ci_connection, @stop_file, out: File::NULL, err: log)
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

  # Whether every migration is finished where it must be: each database's own after a split, or
  # everything on main (+owned+ of [["main", table], ...]) after a rollback.
  def finished?(owned = self.class.owned)
    now = progress
    owned.all? { |key| now[key]&.last == :finished }
  end

  def wait_until_finished(timeout: 180, owned: self.class.owned)
    wait_until(timeout:, what: "all migrations finished") { finished?(owned) }
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

  def url_of(database)
    database == "main" ? @source_url : @target_url
  end

  def stale(delete: false)
    { "main" => SchemaFence::Cutover.cleanup(@source_url, delete:),
      "ci" => SchemaFence::Cutover.cleanup(@target_url, delete:) }
  end

  def teardown
    stop_workers
    @replica&.stop
    @replicas&.each(&:stop)
    @source&.stop
    FileUtils.rm_rf(@dir)
  end
end
