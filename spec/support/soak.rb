# frozen_string_literal: true

require "fileutils"
require "pg"
require "tmpdir"
require_relative "soak_facts"
require_relative "soak_faults"

# The soak of spec/soak_spec.rb: a source cluster where main serves main and ci, a streaming
# replica that becomes ci at the cutover, two Sidekiq processes each serving both databases, and
# faults at random moments (a printed seed replays them): SIGKILLed Sidekiq processes, PostgreSQL
# restarts (fast shutdown, and a crash), pauses and resumes; a cutover midway.
class Soak
  include SoakFacts
  include SoakFaults

  BATCH_SIZE = 400
  SUB_BATCH_SIZE = 100
  LEASE = 6
  MAX_ATTEMPTS = 5

  attr_reader :seed, :rows, :events, :samples, :source_url, :target_url, :cutover_outcomes

  def initialize(seed:, seconds:)
    @seed = seed
    @random = Random.new(seed)
    # One batch a second per migration (interval 1): the migrations last about +seconds+.
    @rows = BATCH_SIZE * seconds
    @dir = Dir.mktmpdir("schema_fence-soak")
    @events = []
    @samples = []
    @sidekiqs = {}
    @quiet = Mutex.new
    @stop = false
  end

  def setup
    @source = SchemaFence::Cluster.start(settings: { synchronous_commit: true })
    @source_url = @source.create_database("app")
    PG.connect(@source_url) do |c|
      SoakPlan::TABLES.each_key do |table|
        c.exec("CREATE TABLE #{table} (id bigint PRIMARY KEY, done int NOT NULL DEFAULT 0)")
        c.exec_params("INSERT INTO #{table} (id) SELECT generate_series(1, $1::bigint)", [rows])
      end
    end
    SchemaFence::Install.up(@source_url, name: "main", serves: %w[main ci])
    SoakPlan::TABLES.each do |table, (schema, _)|
      SchemaFence::Store.queue(@source_url, job_class_name: SoakPlan.job_class_name(table), table_name: table,
                                            column_name: "id", restriction: schema, job_interval: 1,
                                            batch_size: BATCH_SIZE, sub_batch_size: SUB_BATCH_SIZE, pause_ms: 0)
    end
    @target = @source.replica
    @target_url = @target.url("app")
  end

  # Starts both Sidekiq processes, the scheduler pump, the fault injector and the sampler.
  def start
    2.times { |i| start_sidekiq(i) }
    Sidekiq.configure_client { |c| c.redis = { url: RedisServer.url } }
    @threads = [Thread.new { pump }, Thread.new { inject_faults }, Thread.new { sample }]
  end

  # The smallest progress of the migrations on main's side (the source).
  def progress
    SchemaFence::Migrations.on(@source_url).map(&:progress).min || 0
  rescue PG::Error, SchemaFence::Error
    0
  end

  # Runs the cutover with the faults held back (a cutover under faults is another test's).
  def cutover
    @quiet.synchronize do
      cutover = SchemaFence::Cutover.new(source_url: @source_url, target_url: @target_url,
                                         catch_up_timeout: 60, drain_timeout: 90)
      @cutover_outcomes = cutover.execute
    end
    log("cutover done: #{@cutover_outcomes.map(&:step).join(', ')}")
  end

  def split?
    !@cutover_outcomes.nil?
  end

  # Whether every migration is finished on each database that owns its table; raises as soon as
  # one failed (the soak cannot pass then, so it need not wait).
  def finished?
    statuses = SoakPlan::TABLES.keys.flat_map do |table|
      SoakPlan.owners(table).map { |owner| migration(owner, table)&.status }
    end
    raise "soak (seed #{seed}): a migration failed; #{describe_progress}" if statuses.include?(:failed)

    statuses.all?(:finished)
  rescue PG::Error, SchemaFence::Error
    false
  end

  def migration(owner, table)
    SchemaFence::Migrations.on(url_of(owner)).find { |m| m.table_name == table }
  end

  def url_of(database)
    database == "main" ? @source_url : @target_url
  end

  def wait_until(what, timeout:)
    deadline = Process.clock_gettime(Process::CLOCK_MONOTONIC) + timeout
    until yield
      raise "soak (seed #{seed}): #{what} not reached in #{timeout}s; #{describe_progress}" if
        Process.clock_gettime(Process::CLOCK_MONOTONIC) > deadline

      sleep 0.25
    end
  end

  def describe_progress
    %w[main ci].flat_map do |db|
      SchemaFence::Migrations.on(url_of(db)).map { |m| "#{db}:#{m.table_name}=#{m.status}/#{(m.progress * 100).round}%" }
    rescue PG::Error, SchemaFence::Error => e
      ["#{db}: #{e.class}"]
    end.join(" ")
  end

  # Stops the faults, then the processes.
  def stop
    @stop = true
    @threads&.each(&:join)
    @sidekiqs.each_value { |pid| stop_process(pid) }
    @sidekiqs.clear
  end

  def teardown
    stop
    @target&.stop
    @source&.stop
    FileUtils.rm_rf(@dir)
  end

  private

  def start_sidekiq(index)
    env = { "REDIS_URL" => RedisServer.url, "MAIN_DATABASE_URL" => @source_url, "CI_DATABASE_URL" => @target_url,
            "SOAK_LEASE" => LEASE.to_s, "SOAK_MAX_ATTEMPTS" => MAX_ATTEMPTS.to_s }
    boot = File.expand_path("../fixtures/soak_app/boot.rb", __dir__)
    log = File.join(@dir, "sidekiq-#{index}.log")
    @sidekiqs[index] = spawn(env, "sidekiq", "-r", boot, "-c", "4", "-q", "default", out: [log, "a"], err: [log, "a"])
  end

  def stop_process(pid)
    Process.kill(:TERM, pid)
    Process.wait(pid)
  rescue Errno::ESRCH, Errno::ECHILD
    nil
  end

  # What sidekiq-cron does every minute, faster, without piling up executions.
  def pump
    until @stop
      begin
        if ::Sidekiq::Queue.new("default").size < 16
          %w[MainScheduler CiScheduler].each { |klass| ::Sidekiq::Client.push("class" => klass, "args" => []) }
        end
      rescue StandardError => e
        log("pump: #{e.class}: #{e.message}")
      end
      sleep 0.2
    end
  end

  # RSS of each Sidekiq process (KiB) and client connections to each cluster, every second.
  def sample
    until @stop
      rss = @sidekiqs.values.map { |pid| File.read("/proc/#{pid}/status")[/VmRSS:\s+(\d+)/, 1].to_i rescue 0 } # rubocop:disable Style/RescueModifier
      @samples << { rss:, connections: { "main" => connections(@source_url), "ci" => connections(@target_url) } }
      sleep 1
    end
  end

  def connections(url)
    PG.connect(url) do |c|
      c.exec("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND backend_type = 'client backend' " \
             "AND pid <> pg_backend_pid()").getvalue(0, 0).to_i
    end
  rescue PG::Error
    nil
  end

  def log(line)
    $stdout.puts("  soak seed #{seed}: #{line}")
  end
end
