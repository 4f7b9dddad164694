# frozen_string_literal: true

# docs/architecture.md section 12: the statement guard inside a Ruby job's batch at GitLab's default sizes
# (batch 1,000 / sub-batch 100): the same job (`each_sub_batch` + `update_all`) on the same
# ActiveRecord connection, with the guard on and off, batch by batch in turn (the order swapped
# every pair) over fresh key ranges; each round's overhead is its guarded batches' time over its
# unguarded ones'. Beside it, the time spent inside the guard's checks themselves (timed around
# each check), which the machine's load moves far less than the difference of two batch times.
# Budget: the guard's checks take <= 3% of the batch time (the median round); the A/B overhead
# is printed beside it.
# Twice: with ActiveRecord's prepared statements (keys bound, the texts repeat: a hash lookup per
# statement) and with `prepared_statements: false` (keys written into the texts, as behind
# PgBouncer: the guard's cache by shape). BENCH_ROUNDS and BENCH_BATCHES (per side per round).

require "active_record"
require "pg"
require "schema_fence/testing"
require_relative "support/report"
require_relative "support/repeated"

FIXTURES = File.expand_path("../../shared/fixtures/gitlab", __dir__)
ROUNDS = Integer(ENV.fetch("BENCH_ROUNDS", "15"))
BATCHES = Integer(ENV.fetch("BENCH_BATCHES", "20"))
BATCH_SIZE = 1_000
SUB_BATCH_SIZE = 100
# Every measured batch gets a key range of its own (the warm-up round and the measured ones, the
# guard off and on): with keys as literals every text is then new to the guard, as in a real
# backfill. (With 400,000 rows the ranges came round again from round 10 on, and the guard's cost
# fell from about 4% to 0.5% of batch time once it had seen every text.)
ROWS = (ROUNDS + 1) * BATCHES * 2 * BATCH_SIZE
BUDGET = 3.0

# What the job reads of a claimed batch (cursor_columns nil: an id-batched migration).
BenchBatch = Struct.new(:min_value, :max_value, :sub_batch_size, :pause_ms, :table_name, :column_name,
                        :job_arguments, :cursor_columns, keyword_init: true)

class BoundKeysRecord < ActiveRecord::Base
  self.abstract_class = true
end

class LiteralKeysRecord < ActiveRecord::Base
  self.abstract_class = true
end

# The guard, with the seconds spent in its checks summed.
class TimedGuard
  attr_reader :seconds

  def initialize(guard)
    @guard = guard
    @seconds = 0.0
  end

  def check(sql)
    started = Process.clock_gettime(Process::CLOCK_MONOTONIC)
    @guard.check(sql)
  ensure
    @seconds += Process.clock_gettime(Process::CLOCK_MONOTONIC) - started
  end

  def method_missing(name, ...) = @guard.public_send(name, ...)
  def respond_to_missing?(name, include_private = false) = @guard.respond_to?(name, include_private) || super
end

class BenchBackfillIssues < SchemaFence::BatchedMigrationJob
  def perform
    each_sub_batch { |sub_batch| sub_batch.update_all("state_id = state_id + 1") }
  end
end

# Runs one batch on +record+, the next key range of +keys+, under +guard+ (or none); its seconds.
def run_batch(record, keys, guard)
  from = keys.next
  batch = BenchBatch.new(min_value: from, max_value: from + BATCH_SIZE - 1, sub_batch_size: SUB_BATCH_SIZE,
                         pause_ms: 0, table_name: "issues", column_name: "id", job_arguments: [])
  job = BenchBackfillIssues.new(batch:, connection_class: record)
  started = Process.clock_gettime(Process::CLOCK_MONOTONIC)
  guard ? SchemaFence::GuardHook.with(guard, record.connection) { job.perform } : job.perform
  Process.clock_gettime(Process::CLOCK_MONOTONIC) - started
end

# One round: BATCHES pairs of batches, guard off and on in turn; [seconds off, seconds on].
def round(record, keys, guard)
  BATCHES.times.reduce([0.0, 0.0]) do |(off, on), pair|
    sides = pair.even? ? [nil, guard] : [guard, nil]
    times = sides.map { |g| run_batch(record, keys, g) }
    times.reverse! if pair.odd?
    [off + times[0], on + times[1]]
  end
end

def key_ranges
  Enumerator.new { |y| loop { (1..ROWS).step(BATCH_SIZE) { |k| y << k } } }
end

def overhead_bench(label, record, dictionary)
  guard = TimedGuard.new(SchemaFence::Guard.new(dictionary:, allowed: %i[gitlab_main gitlab_shared gitlab_internal],
                                                tag: :gitlab_main))
  keys = key_ranges
  round(record, keys, guard)
  samples = { "off" => [], "on" => [], "checks" => [] }
  ROUNDS.times do
    checked = guard.seconds
    off, on = round(record, keys, guard)
    samples["off"] << off
    samples["on"] << on
    samples["checks"] << ((guard.seconds - checked) / on * 100)
  end
  ratios = samples["on"].zip(samples["off"]).map { |on, off| ((on / off) - 1) * 100 }
  min, median, max = SchemaFence::Bench::Repeated.spread(ratios)
  repeated = SchemaFence::Bench::Repeated
  puts "  #{label}: guard off #{repeated.spread_text(samples['off'], per: BATCHES)} | " \
       "guard on #{repeated.spread_text(samples['on'], per: BATCHES)} per batch (min / median / max)"
  puts format("  %<label>s: time inside the guard's checks %<s>s%% of the guarded batch time (min / median / max); " \
              "its cache holds %<t>d texts, %<h>d shapes",
              label:, s: repeated.spread(samples["checks"]).map { |v| format("%.2f", v) }.join(" / "),
              t: guard.cache_size, h: guard.shape_cache_size)
  checks = repeated.spread(samples["checks"])[1]
  met = checks <= BUDGET
  puts format("%<name>-44s A/B overhead %<min>+.1f%% / %<median>+.1f%% / %<max>+.1f%% | inside the checks " \
              "%<checks>.2f%% of batch time (median) | budget <= %<budget>g%% | %<status>s",
              name: "guard in a Ruby job, #{label}", min:, median:, max:, checks:, budget: BUDGET,
              status: met ? "PASS" : "MISSED")
  met
end

cluster = SchemaFence::Cluster.start
results = []
begin
  url = cluster.create_database("bench_guard_job")
  PG.connect(url) do |c|
    c.exec("CREATE TABLE issues (id bigint PRIMARY KEY, state_id int NOT NULL DEFAULT 0) WITH (fillfactor = 50)")
    c.exec("INSERT INTO issues (id) SELECT generate_series(1, #{ROWS})")
    c.exec("VACUUM ANALYZE issues")
  end
  BoundKeysRecord.establish_connection(url:, prepared_statements: true)
  LiteralKeysRecord.establish_connection(url:, prepared_statements: false)
  dictionary = SchemaFence::Dictionary.load(File.join(FIXTURES, "gitlab_schemas.yml"))
  puts "guard in a Ruby job: batch #{BATCH_SIZE} / sub-batch #{SUB_BATCH_SIZE}, #{ROUNDS} rounds of " \
       "#{BATCHES} pairs of batches (guard off, guard on)"
  results << overhead_bench("keys bound", BoundKeysRecord, dictionary)
  results << overhead_bench("keys as literals", LiteralKeysRecord, dictionary)
ensure
  ActiveRecord::Base.connection_handler.clear_all_connections!
  cluster.stop
end
SchemaFence::Bench::Report.summary("guard job", results)
