# frozen_string_literal: true

# docs/architecture.md section 12, the fetch at 1,000,000 tracking rows in every layout the tracking data of a
# split takes, against GitLab's ActiveRecord scope chain
# (for_gitlab_schema(...).executable.queue_order.first) in the same run: median <= 100 us and
# >= 10x in each. The layouts, on a `ci` database after the split:
# - interleaved: main and ci rows alternate, one in ten active;
# - stale rows first: every row but the last 1,000 is main's (stale), all of them active;
# - none due: 1,000 active migrations on 1,000 tables, each with a batch that just started;
# - half paused: half of the rows paused, the last 1,000 active.
# Both sides run in alternating windows of 100 calls (each side's windows spread over 3
# connections). Printed: min / median / max of each side's window medians, and of a `SELECT 1`
# window on the same cluster (the round trip's floor).
# The bench pins itself and the cluster it starts to one CPU (bench/support/pin.rb: this VM's
# cross-CPU round trips take 11 or 75 us as the scheduler places the processes); the scope
# chain, which is Ruby CPU time, is not changed by it. BENCH_PIN=0 does not pin.
# Run with `ruby -Ilib bench/fetch_bench.rb`; BENCH_FETCH_ROWS overrides the 1,000,000,
# BENCH_FETCH_LAYOUTS picks layouts by their 0-based number.

require "active_record"
require "pg"
require "schema_fence/testing"
require_relative "support/gitlab_fixtures"
require_relative "support/report"
require_relative "support/spread"
require_relative "support/pin"

$stdout.sync = true
Report = SchemaFence::Bench::Report
Spread = SchemaFence::Bench::Spread
ROWS = Integer(ENV.fetch("BENCH_FETCH_ROWS", "1000000"))
WINDOWS = 15
PINNED = SchemaFence::Bench::Pin.one_cpu

SchemaFence::Bench::GitlabFixtures.configure

require_relative "support/gitlab_baseline"

def insert_migrations(conn, from, to, schema:, status:, table:)
  conn.exec(<<~SQL)
    INSERT INTO batched_background_migrations (created_at, updated_at, job_class_name, table_name, column_name,
                                               gitlab_schema, "interval", batch_size, sub_batch_size, min_value,
                                               max_value, status)
    SELECT now(), now(), 'Job' || i, #{table}, 'id', #{schema}, 120, 1000, 100, 1, 1000000, #{status}
    FROM generate_series(#{Integer(from)}, #{Integer(to)}) i
  SQL
end

LAYOUTS = {
  "interleaved" => lambda do |c|
    insert_migrations(c, 1, ROWS, schema: "CASE WHEN i % 2 = 0 THEN 'gitlab_ci' ELSE 'gitlab_main' END",
                                  status: "CASE WHEN i % 10 = 0 THEN 1 ELSE 3 END", table: "'table_' || (i % 2000)")
  end,
  "stale rows first" => lambda do |c|
    insert_migrations(c, 1, ROWS - 1000, schema: "'gitlab_main'", status: "1", table: "'main_' || i")
    insert_migrations(c, ROWS - 999, ROWS, schema: "'gitlab_ci'", status: "1", table: "'ci_' || i")
  end,
  "1,000 migrations on 1,000 tables, none due" => lambda do |c|
    insert_migrations(c, 1, ROWS - 1000, schema: "'gitlab_ci'", status: "3", table: "'done_' || i")
    insert_migrations(c, ROWS - 999, ROWS, schema: "'gitlab_ci'", status: "1", table: "'table_' || i")
    c.exec(<<~SQL)
      INSERT INTO batched_background_migration_jobs (created_at, updated_at, batched_background_migration_id,
                                                     min_value, max_value, batch_size, sub_batch_size, status)
      SELECT now(), now(), id, 1, 1000, 1000, 100, 3 FROM batched_background_migrations WHERE status = 1
    SQL
  end,
  "half paused" => lambda do |c|
    insert_migrations(c, 1, ROWS - 1000, schema: "'gitlab_ci'", status: "CASE WHEN i % 2 = 0 THEN 0 ELSE 3 END",
                                         table: "'table_' || (i % 2000)")
    insert_migrations(c, ROWS - 999, ROWS, schema: "'gitlab_ci'", status: "1", table: "'active_' || i")
  end
}.freeze

def generic_plan(url, allowed)
  PG.connect(url) do |c|
    c.exec("SET plan_cache_mode = force_generic_plan")
    c.prepare("fence_fetch", SchemaFence::Runner.fetch_sql)
    c.exec("EXPLAIN EXECUTE fence_fetch(#{c.escape_literal("{#{allowed.join(',')}}")}, 8)").values.flatten.join("\n")
  end
end

# The scope chain does not look at the interval: it only agrees where something is due.
def check_agreement(name, runner, allowed)
  ours_ids, = runner.fetch
  theirs = TrackedMigration.for_gitlab_schema(allowed).executable.queue_order.first
  return if ours_ids.empty? || ours_ids.first == theirs&.id

  raise "#{name}: the fetch disagrees with the scope chain: #{ours_ids.first} vs #{theirs&.id}"
end

def index_probes_only?(url, allowed)
  plan = generic_plan(url, allowed)
  puts plan if ENV["BENCH_FETCH_PLAN"]
  # (A seq scan of the empty jobs table, the planner's choice there, reads nothing.)
  !plan.include?("Seq Scan on batched_background_migrations") &&
    plan.include?("index_batched_background_migrations_due")
end

def measure_layout(cluster, index, name, fill)
  url = cluster.create_database("bench_fetch_#{index}")
  SchemaFence::Install.up(url, name: "ci", serves: ["ci"])
  PG.connect(url) do |c|
    fill.call(c)
    c.exec("VACUUM ANALYZE batched_background_migrations")
    c.exec("VACUUM ANALYZE batched_background_migration_jobs")
  end
  allowed = SchemaFence.topology.allowed_schemas(["ci"]).map(&:to_s)
  ActiveRecord::Base.establish_connection(url)
  runners = Array.new(3) { SchemaFence::Runner.new(url:, database: "ci", fetch_limit: 1) }
  check_agreement(name, runners[0], allowed)
  probes_only = index_probes_only?(url, allowed)
  baseline = Spread.new
  ours = Spread.new
  floor = Spread.new
  ping = PG.connect(url)
  ping.prepare("ping", "SELECT 1")
  # Where the scope chain takes seconds (stale rows first), its windows are shorter: 0.5 s each.
  once = Report.median_seconds(runs: 1, warmup: 1) { TrackedMigration.for_gitlab_schema(allowed).executable.queue_order.first }
  baseline_runs = (0.5 / once).floor.clamp(1, 100)
  WINDOWS.times do |i|
    baseline << Report.median_seconds(runs: baseline_runs, warmup: baseline_runs > 1 ? 5 : 0) do
      TrackedMigration.for_gitlab_schema(allowed).executable.queue_order.first
    end
    runner = runners[i % 3]
    ours << Report.median_seconds(runs: 100, warmup: 5) { runner.fetch }
    floor << Report.median_seconds(runs: 100, warmup: 5) { ping.exec_prepared("ping") }
  end
  ping.close
  ratio = baseline.median / ours.median
  met = probes_only && ours.median <= 0.0001 && ratio >= 10
  puts format("fetch, %<rows>d rows, %-42<name>s baseline %<b>s | schema_fence %<o>s | %<ratio>6.1fx | " \
              "SELECT 1 %<floor>s | budget <= 100 us, >= 10x | plan: %<plan>s | %<status>s",
              rows: ROWS, name:, b: baseline, o: ours, ratio:, floor:,
              plan: probes_only ? "index probes" : "NOT INDEX PROBES", status: met ? "PASS" : "MISSED")
  met
ensure
  ActiveRecord::Base.remove_connection
  # 1M rows a layout: each goes before the next one is filled.
  PG.connect(cluster.url) { |c| c.exec("DROP DATABASE IF EXISTS bench_fetch_#{Integer(index)} WITH (FORCE)") }
end

puts "fetch bench: #{ROWS} tracking rows per layout; figures are min / median / max of #{WINDOWS} " \
     "window medians (100 calls each); #{PINNED}; " \
     "load: #{File.read('/proc/loadavg').split.first(3).join(' ')}"
results = []
cluster = SchemaFence::Cluster.start
begin
  # BENCH_FETCH_LAYOUTS=1,2: only those layouts (0-based), e.g. to repeat one.
  only = ENV["BENCH_FETCH_LAYOUTS"]&.split(",")&.map { |i| Integer(i) }
  LAYOUTS.each_with_index do |(name, fill), i|
    results << measure_layout(cluster, i, name, fill) if only.nil? || only.include?(i)
  end
ensure
  cluster.stop
end
Report.summary("fetch bench", results)
