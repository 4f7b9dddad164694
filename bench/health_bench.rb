# frozen_string_literal: true

# What the health check costs per claim: claims per second (claim + complete of a no-op batch of
# 10 keys, optimizer off) with the health reading off (the baseline), on and read before every
# claim (cache 0: the worst case, one more round trip each), and on with the default cache of
# 5 s (what a worker runs with). One throwaway cluster, alternating rounds so every side sees the
# same machine load; each round is RUNS batches; min / median / max over the rounds per side.
# Run with `ruby -Ilib bench/health_bench.rb` (BENCH_ROUNDS, BENCH_RUNS override 15 and 200).

require "pg"
require "schema_fence/testing"
require_relative "support/gitlab_fixtures"
require_relative "support/report"
require_relative "support/repeated"

Report = SchemaFence::Bench::Report
Repeated = SchemaFence::Bench::Repeated
ROUNDS = Integer(ENV.fetch("BENCH_ROUNDS", "15"))
RUNS = Integer(ENV.fetch("BENCH_RUNS", "200"))

SchemaFence::Bench::GitlabFixtures.configure

def runner(url, health)
  SchemaFence::Runner.new(url:, database: "main", health:, optimizer: { enabled: false })
end

def claims(runner)
  proc do
    RUNS.times do
      claimed = runner.claim_next
      raise "no batch: #{claimed.inspect}" unless claimed.is_a?(SchemaFence::Batch)

      runner.complete(claimed)
    end
  end
end

def rate_text(seconds)
  min, median, max = Repeated.spread(seconds).map { |s| RUNS / s }.sort
  format("%<min>8.0f / %<median>8.0f / %<max>8.0f claims/s", min:, median:, max:)
end

cluster = SchemaFence::Cluster.start
begin
  url = cluster.create_database("bench_health")
  SchemaFence::Install.up(url, name: "main", serves: ["main"])
  PG.connect(url) do |c|
    c.exec("CREATE TABLE projects (id bigint PRIMARY KEY); INSERT INTO projects SELECT generate_series(1, 1000000)")
    c.exec("ANALYZE projects")
  end
  dictionary = SchemaFence::Bench::GitlabFixtures.dictionary
  SchemaFence::Store.queue(url, dictionary:, job_class_name: "NoopJob", table_name: "projects", column_name: "id",
                                restriction: "gitlab_main", job_interval: 0, batch_size: 10, sub_batch_size: 10,
                                pause_ms: 0)
  runners = {
    "health off (baseline)" => runner(url, { enabled: false }),
    "health on, read every claim" => runner(url, { cache: 0 }),
    "health on, cached 5 s" => runner(url, {})
  }
  runners.each_value { |r| 2.times { r.complete(r.claim_next) } }
  sides = runners.transform_values { |r| claims(r) }
  seconds = Repeated.alternate(rounds: ROUNDS, sides:)
  held = PG.connect(url) { |c| c.exec("SELECT count(*) FROM batched_background_migrations WHERE on_hold_until IS NOT NULL") }
  raise "a side was held: the bench measured holds, not claims" unless held.getvalue(0, 0) == "0"

  puts "claims per second (claim + complete, no-op batch), #{ROUNDS} rounds of #{RUNS} claims: min / median / max"
  seconds.each { |label, s| puts format("%<label>-30s %<rate>s", label:, rate: rate_text(s)) }
  base = Repeated.spread(seconds["health off (baseline)"])
  seconds.except("health off (baseline)").each do |label, s|
    figures = Repeated.spread(s)
    [["fastest rounds", 0], ["median rounds", 1]].each do |which, i|
      cost = (figures[i] - base[i]) / RUNS
      puts format("%<label>-30s %<which>-14s %<cost>10s per claim (%<pct>+6.1f%% claims/s)",
                  label:, which:, cost: (cost.negative? ? "-" : "+") + Report.duration(cost.abs),
                  pct: ((base[i] / figures[i]) - 1) * 100)
    end
  end
ensure
  cluster&.stop
end
