# frozen_string_literal: true

# docs/architecture.md section 12, the Ruby-job backfill: a SchemaFence::BatchedMigrationJob
# (`each_sub_batch` + `update_all`, as GitLab's backfills are written) at batch 100,000 / sub-batch
# 10,000, run by a worker (its claim, the job on ActiveRecord through JobConnection with the
# guard on, the completion), against one unbatched UPDATE of the same number of rows, in the same
# run: >= 70% of its rows per second. The rounds are the SQL-job bench's (bench/support/
# backfill_rounds.rb): two tables of ROWS rows, one with each side, the order swapped every round,
# every row checked updated exactly once. Printed: min / median / max of each side's rows per
# second, and the share of medians.
# Run with `ruby -Ilib bench/ruby_backfill_bench.rb`; BENCH_BACKFILL_ROWS overrides the
# 1,000,000, BENCH_BACKFILL_ROUNDS the 4 rounds.

require "active_record"
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
BUDGET = 0.70

SchemaFence::Bench::GitlabFixtures.configure do |c|
  c.job_namespace = "Gitlab::BackgroundMigration"
  # As in the SQL-job bench (bench/support/backfill_rounds.rb): the batching, not the database.
  c.health(enabled: false)
end

module Gitlab
  module BackgroundMigration
    # GitLab's shape of a backfill job.
    class BenchBackfillDone < SchemaFence::BatchedMigrationJob
      operation_name :update_all
      feature_category :database

      def perform
        each_sub_batch { |sub_batch| sub_batch.update_all("done = done + 1") }
      end
    end
  end
end

def prepare(cluster)
  url = cluster.create_database("bench_ruby_backfill")
  SchemaFence::Install.up(url, name: "ci", serves: ["ci"])
  BackfillRounds.create_id_tables(url, TABLES, ROWS)
  url
end

def queue(url, table, dictionary, round)
  SchemaFence::Store.queue(url, dictionary:, job_class_name: "BenchBackfillDone", table_name: table,
                                column_name: "id", job_arguments: [round], restriction: "gitlab_ci", job_interval: 0,
                                batch_size: 100_000, sub_batch_size: 10_000, pause_ms: 0)
end

# The worker's own path for a claimed batch (Worker#run: the job, its guard, the completion); the
# claim reads no health indicator (configured off above).
def drain_with(worker)
  lambda do |_table|
    while (batch = worker.runner.claim_next).is_a?(SchemaFence::Batch)
      outcome = worker.send(:run, batch)
      raise "batch #{batch.job_id} ended #{outcome.status}: #{outcome.inspect}" unless outcome.status == :ran
    end
  end
end

puts "Ruby-job backfill bench: #{ROWS} rows, batch 100,000 / sub-batch 10,000, #{ROUNDS} rounds; " \
     "load: #{File.read('/proc/loadavg').split.first(3).join(' ')}"
results = []
cluster = SchemaFence::Cluster.start
begin
  url = prepare(cluster)
  dictionary = SchemaFence::Bench::GitlabFixtures.dictionary
  worker = SchemaFence::Worker.new(database: "ci", url:)
  rounds = BackfillRounds.new(url:, tables: TABLES, rows: ROWS, drain: drain_with(worker))
  share = rounds.run(ROUNDS) { |table, round| queue(url, table, dictionary, round) }
  results << rounds.verdict("Ruby-job backfill", share, budget: BUDGET)
ensure
  cluster.stop
end
Report.summary("Ruby-job backfill bench", results)
