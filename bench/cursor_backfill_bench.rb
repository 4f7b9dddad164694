# frozen_string_literal: true

# Cursor batching (GitLab's composite keys): a SQL-job backfill of a cursor-batched row, batch
# 100,000 / sub-batch 10,000, walked in keyset order over (id, partition_id), against one
# unbatched UPDATE of the same number of rows, in the same run. The SQL-job budget of
# docs/architecture.md section 12 (>= 85% of the unbatched rows per second) is the mark.
# Each round updates two tables of ROWS rows, one with each side, then swaps which side runs
# first. Printed: min / median / max of each side's rows per second, and the share of medians.
# Run with `ruby -Ilib bench/cursor_backfill_bench.rb`; BENCH_CURSOR_ROWS overrides the
# 1,000,000, BENCH_CURSOR_ROUNDS the 4 rounds.

require "pg"
require "schema_fence/testing"
require_relative "support/gitlab_fixtures"
require_relative "support/report"
require_relative "support/backfill_rounds"

Report = SchemaFence::Bench::Report
BackfillRounds = SchemaFence::Bench::BackfillRounds
ROWS = Integer(ENV.fetch("BENCH_CURSOR_ROWS", "1000000"))
ROUNDS = Integer(ENV.fetch("BENCH_CURSOR_ROUNDS", "4"))
TABLES = %w[ci_stages ci_builds_metadata].freeze
STATEMENT = "UPDATE %<table>s SET done = done + 1 WHERE (id, partition_id) BETWEEN ($1, $2) AND ($3, $4)"

SchemaFence::Bench::GitlabFixtures.configure

# Half the ids in partition 100, each id also in 101: keyset order interleaves the partitions.
def prepare(cluster)
  url = cluster.create_database("bench_cursor_backfill")
  SchemaFence::Install.up(url, name: "ci", serves: ["ci"])
  PG.connect(url) do |c|
    TABLES.each do |table|
      c.exec("CREATE TABLE #{table} (id bigint, partition_id int, done int NOT NULL DEFAULT 0, " \
             "PRIMARY KEY (id, partition_id)) WITH (fillfactor = 50); " \
             "INSERT INTO #{table} (id, partition_id) SELECT i, p FROM generate_series(1, #{ROWS / 2}) i, " \
             "(VALUES (100), (101)) v(p)")
    end
  end
  TABLES.each { |table| SchemaFence.sql_job("Backfill#{table}", format(STATEMENT, table:)) }
  url
end

# The row as GitLab writes a cursor-batched migration, walked over the table's primary key.
def queue_cursor(url, table, round)
  PG.connect(url) do |c|
    c.exec_params(<<~SQL, ["Backfill#{table}", table, "[#{round}]", "[#{ROWS / 2}, 101]"])
      INSERT INTO batched_background_migrations (created_at, updated_at, min_value, max_value, min_cursor, max_cursor,
        batch_size, sub_batch_size, "interval", status, job_class_name, table_name, column_name, job_arguments,
        gitlab_schema, pause_ms)
      VALUES (now(), now(), NULL, NULL, '[0, 0]', $4::jsonb, 100000, 10000, 0, 1, $1, $2, 'id', $3::jsonb, 'gitlab_ci', 0)
    SQL
  end
end

puts "cursor backfill bench: #{ROWS} rows over (id, partition_id), batch 100,000 / sub-batch 10,000, " \
     "#{ROUNDS} rounds; load: #{File.read('/proc/loadavg').split.first(3).join(' ')}"
results = []
cluster = SchemaFence::Cluster.start
begin
  url = prepare(cluster)
  rounds = BackfillRounds.new(url:, tables: TABLES, rows: ROWS)
  share = rounds.run(ROUNDS) { |table, round| queue_cursor(url, table, round) }
  results << rounds.verdict("cursor SQL-job backfill", share)
ensure
  cluster.stop
end
Report.summary("cursor backfill bench", results)
