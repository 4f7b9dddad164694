# frozen_string_literal: true

# docs/architecture.md section 12, the SQL-job backfill at batch 100,000 / sub-batch 10,000 against one
# unbatched UPDATE of the same number of rows, in the same run: >= 85% of its rows per second.
# Each round updates two tables of ROWS rows, one with each side, then swaps which side runs
# first (the second statement of a round finds a warmer cache and a busier checkpointer). Printed:
# min / median / max of each side's rows per second over the rounds, and the share of medians.
# Run with `ruby -Ilib bench/backfill_bench.rb`; BENCH_BACKFILL_ROWS overrides the 1,000,000
# (10,000,000 takes about ten minutes on this machine), BENCH_BACKFILL_ROUNDS the 4 rounds.

require "pg"
require "schema_fence/testing"
require_relative "support/report"
require_relative "support/spread"

Report = SchemaFence::Bench::Report
Spread = SchemaFence::Bench::Spread
FIXTURES = File.expand_path("../../shared/fixtures/gitlab", __dir__)
ROWS = Integer(ENV.fetch("BENCH_BACKFILL_ROWS", "1000000"))
ROUNDS = Integer(ENV.fetch("BENCH_BACKFILL_ROUNDS", "4"))
TABLES = %w[ci_builds ci_pipelines].freeze
STATEMENT = "UPDATE %<table>s SET done = done + 1 WHERE id BETWEEN $1 AND $2"

SchemaFence.configure do |c|
  c.dictionary_paths = [File.join(FIXTURES, "gitlab_schemas.yml")]
  c.topology_path = File.join(FIXTURES, "database_connections")
end

def now = Process.clock_gettime(Process::CLOCK_MONOTONIC)

def prepare(cluster)
  url = cluster.create_database("bench_backfill")
  SchemaFence::Install.up(url, name: "ci", serves: ["ci"])
  PG.connect(url) do |c|
    TABLES.each do |table|
      # fillfactor 50: every round's update stays on its page (HOT), as GitLab's backfills do.
      c.exec("CREATE TABLE #{table} (id bigint PRIMARY KEY, done int NOT NULL DEFAULT 0) WITH (fillfactor = 50); " \
             "INSERT INTO #{table} (id) SELECT generate_series(1, #{ROWS})")
    end
  end
  TABLES.each { |table| SchemaFence.sql_job("Backfill#{table}", format(STATEMENT, table:)) }
  url
end

def vacuum(url)
  PG.connect(url) { |c| TABLES.each { |t| c.exec("VACUUM ANALYZE #{t}") } }
end

def unbatched(url, table)
  PG.connect(url) do |c|
    started = now
    c.exec("UPDATE #{table} SET done = done + 1")
    now - started
  end
end

def batched(url, table, dictionary, round)
  SchemaFence::Store.queue(url, dictionary:, job_class_name: "Backfill#{table}", table_name: table, column_name: "id",
                                job_arguments: [round], restriction: "gitlab_ci", job_interval: 0,
                                batch_size: 100_000, sub_batch_size: 10_000, pause_ms: 0)
  runner = SchemaFence::Runner.new(url:, database: "ci")
  statement = SchemaFence::SqlJobs["Backfill#{table}"]
  started = now
  while (batch = runner.claim_next).is_a?(SchemaFence::Batch)
    runner.complete(batch, runner.run_sql_batch(batch, statement))
  end
  now - started
end

def done_everywhere?(url, round)
  PG.connect(url) do |c|
    TABLES.all? do |table|
      c.exec("SELECT count(*) FROM #{table} WHERE done <> #{Integer(round)}").getvalue(0, 0).to_i.zero?
    end
  end
end

puts "backfill bench: #{ROWS} rows, batch 100,000 / sub-batch 10,000, #{ROUNDS} rounds; " \
     "load: #{File.read('/proc/loadavg').split.first(3).join(' ')}"
results = []
cluster = SchemaFence::Cluster.start
begin
  url = prepare(cluster)
  dictionary = SchemaFence::Dictionary.load(File.join(FIXTURES, "gitlab_schemas.yml"))
  baseline = Spread.new
  ours = Spread.new
  (1..ROUNDS).each do |round|
    vacuum(url)
    # Odd rounds: the unbatched UPDATE first, on the first table; even rounds: the job first.
    unbatched_table, job_table = round.odd? ? TABLES : TABLES.reverse
    sides = { baseline: -> { unbatched(url, unbatched_table) }, ours: -> { batched(url, job_table, dictionary, round) } }
    order = round.odd? ? %i[baseline ours] : %i[ours baseline]
    order.each { |side| (side == :baseline ? baseline : ours) << (ROWS / sides[side].call) }
    raise "round #{round}: a row was not updated exactly once" unless done_everywhere?(url, round)
  end
  share = ours.median / baseline.median
  met = share >= 0.85
  rate = ->(v) { "#{v.round} rows/s" }
  puts format("SQL-job backfill of %<rows>d rows: unbatched UPDATE %<b>s | schema_fence %<o>s | " \
              "%<share>.0f%% of the unbatched rows/s (medians) | budget >= 85%% | %<status>s",
              rows: ROWS, b: baseline.to_s(rate), o: ours.to_s(rate), share: share * 100,
              status: met ? "PASS" : "MISSED")
  results << met
ensure
  cluster.stop
end
Report.summary("backfill bench", results)
