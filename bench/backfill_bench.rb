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
require_relative "support/gitlab_fixtures"
require_relative "support/report"
require_relative "support/backfill_rounds"

Report = SchemaFence::Bench::Report
BackfillRounds = SchemaFence::Bench::BackfillRounds
ROWS = Integer(ENV.fetch("BENCH_BACKFILL_ROWS", "1000000"))
ROUNDS = Integer(ENV.fetch("BENCH_BACKFILL_ROUNDS", "4"))
TABLES = %w[ci_builds ci_pipelines].freeze
STATEMENT = "UPDATE %<table>s SET done = done + 1 WHERE id BETWEEN $1 AND $2"

SchemaFence::Bench::GitlabFixtures.configure

def prepare(cluster)
  url = cluster.create_database("bench_backfill")
  SchemaFence::Install.up(url, name: "ci", serves: ["ci"])
  BackfillRounds.create_id_tables(url, TABLES, ROWS)
  TABLES.each { |table| SchemaFence.sql_job("Backfill#{table}", format(STATEMENT, table:)) }
  url
end

def queue(url, table, dictionary, round)
  SchemaFence::Store.queue(url, dictionary:, job_class_name: "Backfill#{table}", table_name: table, column_name: "id",
                                job_arguments: [round], restriction: "gitlab_ci", job_interval: 0,
                                batch_size: 100_000, sub_batch_size: 10_000, pause_ms: 0)
end

puts "backfill bench: #{ROWS} rows, batch 100,000 / sub-batch 10,000, #{ROUNDS} rounds; " \
     "load: #{File.read('/proc/loadavg').split.first(3).join(' ')}"
results = []
cluster = SchemaFence::Cluster.start
begin
  url = prepare(cluster)
  dictionary = SchemaFence::Bench::GitlabFixtures.dictionary
  rounds = BackfillRounds.new(url:, tables: TABLES, rows: ROWS)
  share = rounds.run(ROUNDS) { |table, round| queue(url, table, dictionary, round) }
  results << rounds.verdict("SQL-job backfill", share)
ensure
  cluster.stop
end
Report.summary("backfill bench", results)
