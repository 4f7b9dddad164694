# frozen_string_literal: true

# docs/architecture.md section 12, claims with N workers (N = 1, 2, 4, 8) and 8 executable migrations, each
# worker a process of its own looping claim + complete (a no-op job) for a few seconds:
# - <= 5% of claims come back empty, at every N;
# - no worker waits on another's lock: a sampler reads pg_stat_activity every millisecond and
#   counts the samples in which a worker's session waits on a row or transaction lock;
# - 4 workers reach >= 1.5x the claims per second of one worker (the baseline, same run).
# Each N runs ROUNDS times; printed: min / median / max of the claims per second.
# Beside it, in alternating rounds of the same run, the claim statement by statement (what a
# database installed before `public.schema_fence_claim` gets: about 9 round trips per claim
# against 1), on a database of its own with the function dropped.
# Run with `ruby -Ilib bench/claims_bench.rb`; BENCH_CLAIM_SECONDS overrides the 3 s per round.

require "pg"
require "schema_fence/testing"
require_relative "support/gitlab_fixtures"
require_relative "support/report"
require_relative "support/spread"
require_relative "support/claim_databases"

Report = SchemaFence::Bench::Report
Spread = SchemaFence::Bench::Spread
ClaimDatabases = SchemaFence::Bench::ClaimDatabases
SECONDS = Float(ENV.fetch("BENCH_CLAIM_SECONDS", "3"))
ROUNDS = 3

SchemaFence::Bench::GitlabFixtures.configure

# One worker process: claims and completes until the deadline; writes "claims empty" to +out+.
def worker(url, deadline, out)
  runner = SchemaFence::Runner.new(url:, database: "ci")
  runner.fetch
  claims = empty = 0
  while Process.clock_gettime(Process::CLOCK_MONOTONIC) < deadline
    batch = runner.claim_next
    if batch.is_a?(SchemaFence::Batch)
      runner.complete(batch)
      claims += 1
    else
      empty += 1
    end
  end
  out.puts "#{claims} #{empty}"
  out.close
end

# Samples in which some worker session waits on another's row or transaction lock (`tuple`,
# `transactionid`), and every lock wait seen by its name (`extend`, the relation extension
# lock of concurrent inserts into the jobs table, is storage, not another worker's claim).
ROW_LOCKS = %w[tuple transactionid].freeze

def sample_lock_waits(url, stop)
  PG.connect(url) do |c|
    samples = waits = 0
    seen = Hash.new(0)
    until stop.call
      events = c.exec("SELECT wait_event FROM pg_stat_activity WHERE application_name LIKE '%runner%' " \
                      "AND wait_event_type = 'Lock'").column_values(0)
      samples += 1
      events.each { |e| seen[e] += 1 }
      waits += 1 if events.intersect?(ROW_LOCKS)
      sleep 0.001
    end
    [samples, waits, seen]
  end
end

def round(url, workers)
  readers = []
  start = Process.clock_gettime(Process::CLOCK_MONOTONIC) + 0.5
  deadline = start + SECONDS
  pids = Array.new(workers) do
    reader, writer = IO.pipe
    readers << reader
    pid = fork do
      reader.close
      sleep(start - Process.clock_gettime(Process::CLOCK_MONOTONIC))
      worker(url, deadline, writer)
      exit!(0)
    end
    writer.close
    pid
  end
  sampler = Thread.new { sample_lock_waits(url, -> { Process.clock_gettime(Process::CLOCK_MONOTONIC) > deadline }) }
  counts = readers.map { |r| r.read.split.map(&:to_i) }
  pids.each { |pid| Process.wait(pid) }
  samples, waits, seen = sampler.value
  claims = counts.sum(&:first)
  empty = counts.sum(&:last)
  { per_second: claims / SECONDS, empty_share: empty.to_f / [claims + empty, 1].max, lock_waits: waits,
    samples:, seen: }
end

puts "claims bench: 8 executable migrations, #{ROUNDS} rounds of #{SECONDS} s per worker count; " \
     "load: #{File.read('/proc/loadavg').split.first(3).join(' ')}"
results = []
cluster = SchemaFence::Cluster.start
begin
  urls = ClaimDatabases.prepare_both(cluster)
  figures = Hash.new { |h, k| h[k] = {} }
  [1, 2, 4, 8].each do |workers|
    all = ClaimDatabases::PATHS.keys.to_h { |path| [path, []] }
    ROUNDS.times { ClaimDatabases::PATHS.each_key { |path| all[path] << round(urls[path], workers) } }
    all.each do |path, rounds|
      rate = Spread.new(rounds.map { |r| r[:per_second] })
      empty = rounds.map { |r| r[:empty_share] }.max
      waits = rounds.sum { |r| r[:lock_waits] }
      samples = rounds.sum { |r| r[:samples] }
      seen = rounds.map { |r| r[:seen] }.reduce { |a, b| a.merge(b) { |_, x, y| x + y } }
      figures[path][workers] = rate
      met = empty <= 0.05 && waits.zero?
      puts format("%<path>s, %<n>d worker(s): %<rate>s claims/s (min / median / max) | empty claims at most " \
                  "%<empty>.1f%% (budget <= 5%%) | row-lock waits seen in %<waits>d of %<samples>d samples " \
                  "(every lock wait seen: %<seen>s) | %<status>s",
                  path:, n: workers, rate: rate.to_s(->(v) { v.round.to_s }), empty: empty * 100, waits:,
                  samples:, seen: seen.empty? ? "none" : seen.inspect, status: met ? "PASS" : "MISSED")
      results << met if path == "one statement"
    end
    one = figures["one statement"][workers].median
    steps = figures["statement by statement"][workers].median
    puts format("  %<n>d worker(s): one statement vs statement by statement (medians): %<x>.2fx",
                n: workers, x: one / steps)
  end
  urls.each_value { |url| ClaimDatabases.check_all_executable(url) }

  rates = figures["one statement"]
  speedup = rates[4].median / rates[1].median
  met = speedup >= 1.5
  puts format("4 workers vs 1 worker (median claims/s): %<four>d vs %<one>d = %<x>.2fx | budget >= 1.5x | %<s>s",
              four: rates[4].median, one: rates[1].median, x: speedup, s: met ? "PASS" : "MISSED")
  results << met
ensure
  cluster.stop
end
Report.summary("claims bench", results)
