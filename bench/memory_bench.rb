# frozen_string_literal: true

# docs/architecture.md section 12: a worker process's memory after 10,000 batches against its memory after
# 100 (the baseline, every code path warm). One worker process (bench/support/memory_worker.rb)
# runs batches of two migrations in turn: a Ruby job whose sub-batch keys are written into its
# SQL (prepared_statements=false, so every statement is a new text to the guard, the worst case
# for its cache) and a SQL job. Budget: RSS after 10,000 batches is at most RSS after 100 plus the
# bound of the caches that fill meanwhile (the guard's texts and shapes, 10,000 each, at the
# statement length measured, and a fixed allowance for the Ruby heap's own slack).
# BENCH_BATCHES overrides the 10,000.

require "pg"
require "rbconfig"
require "schema_fence/testing"

FIXTURES = File.expand_path("../../shared/fixtures/gitlab", __dir__)
BATCHES = Integer(ENV.fetch("BENCH_BATCHES", "10000"))
BATCH_SIZE = 10
SUB_BATCH_SIZE = 5
# Bytes a cached guard entry costs besides its key's text: the hash slot, the boxed key, the
# shared analysis (a few table names).
ENTRY_OVERHEAD = 200
# The Ruby heap and malloc arenas settle in steps; a growth below this is noise, not a leak.
SLACK_KIB = 4096
GUARD_ENTRIES = 10_000

def exec(url, sql)
  PG.connect(url) { |c| c.exec(sql) }
end

cluster = SchemaFence::Cluster.start
begin
  url = cluster.create_database("bench_memory")
  SchemaFence::Install.up(url, name: "main", serves: %w[main ci])
  rows = ((BATCHES / 2) + 1) * BATCH_SIZE
  %w[issues projects].each do |table|
    exec(url, "CREATE TABLE #{table} (id bigint PRIMARY KEY, state_id int NOT NULL DEFAULT 0); " \
              "INSERT INTO #{table} (id) SELECT generate_series(1, #{rows})")
  end
  dictionary = SchemaFence::Dictionary.load(File.join(FIXTURES, "gitlab_schemas.yml"))
  ids = [%w[MemoryBenchJob issues], %w[MemoryBenchSql projects]].map do |job, table|
    SchemaFence::Store.queue(url, dictionary:, job_class_name: job, table_name: table, column_name: "id",
                                  restriction: "gitlab_main", job_interval: 0, batch_size: BATCH_SIZE,
                                  sub_batch_size: SUB_BATCH_SIZE, pause_ms: 0).id
  end
  checkpoints = [100, BATCHES / 4, BATCHES / 2, BATCHES * 3 / 4, BATCHES].uniq
  worker = File.expand_path("support/memory_worker.rb", __dir__)
  lib = File.expand_path("../lib", __dir__)
  started = Process.clock_gettime(Process::CLOCK_MONOTONIC)
  output = IO.popen([RbConfig.ruby, "-I", lib, worker, "#{url}?prepared_statements=false", *ids.map(&:to_s),
                     *checkpoints.map(&:to_s)], &:read)
  raise "the worker process failed: #{output}" unless $?.success? # rubocop:disable Style/SpecialGlobalVars

  samples = output.lines.map { |l| l.split.map { |v| Integer(v) } }
  seconds = Process.clock_gettime(Process::CLOCK_MONOTONIC) - started
  statement = PG.connect(url) do |c|
    c.exec("SELECT count(*) FROM batched_background_migration_jobs WHERE status = 3").getvalue(0, 0).to_i
  end
  raise "#{statement} batches succeeded, expected #{BATCHES}" unless statement == BATCHES

  # The Ruby job's statement texts are under 200 bytes (the guard's cache keeps each one, and its
  # shape).
  text_bytes = 200
  bound_kib = ((2 * GUARD_ENTRIES * (text_bytes + ENTRY_OVERHEAD)) / 1024) + SLACK_KIB
  puts "memory: one worker process, #{BATCHES} batches (Ruby job and SQL job in turn, batch #{BATCH_SIZE} / " \
       "sub-batch #{SUB_BATCH_SIZE}) in #{seconds.round}s"
  samples.each do |batches, rss, texts, shapes|
    puts format("  after %<b>6d batches: RSS %<rss>7d KiB | guard cache %<t>5d texts, %<s>d shapes",
                b: batches, rss:, t: texts, s: shapes)
  end
  baseline = samples.first[1]
  last = samples.last[1]
  growth = last - baseline
  met = growth <= bound_kib
  puts format("%<name>-44s baseline %<b>9d KiB | schema_fence %<o>9d KiB | %<g>+6d KiB | budget <= +%<bound>d KiB " \
              "(the caches' bound) | %<status>s",
              name: "worker RSS after #{BATCHES} vs 100 batches", b: baseline, o: last, g: growth,
              bound: bound_kib, status: met ? "PASS" : "MISSED")
  puts "memory: #{met ? 1 : 0}/1 budgets met#{met ? '' : ' (1 MISSED)'}"
ensure
  cluster&.stop
end
