# frozen_string_literal: true

# docs/architecture.md section 7, a claim plus its completion (a no-op job, one worker) across a
# network: the runner reaches the server through a proxy in this process that holds each of the
# server's replies for DELAY (a round trip of that much more than loopback; this machine has no
# netem). The one-statement claim (`public.schema_fence_claim`) against the claim statement by
# statement (the same database with the function dropped), in alternating rounds of one run, at
# each delay. Printed: min / median / max of the milliseconds per claim + completion.
# Run with `ruby -Ilib bench/claim_latency_bench.rb`; BENCH_DELAYS_MS overrides "0 0.5 2".

require "pg"
require "socket"
require "schema_fence/testing"
require_relative "support/gitlab_fixtures"
require_relative "support/report"
require_relative "support/spread"
require_relative "support/claim_databases"

Report = SchemaFence::Bench::Report
Spread = SchemaFence::Bench::Spread
ClaimDatabases = SchemaFence::Bench::ClaimDatabases
DELAYS = ENV.fetch("BENCH_DELAYS_MS", "0 0.5 2").split.map { |ms| Float(ms) / 1000 }
ROUNDS = 5
CLAIMS = 100

SchemaFence::Bench::GitlabFixtures.configure

# A TCP proxy to the server's port that holds every chunk of the server's replies for +delay+.
class DelayProxy
  attr_reader :port
  attr_accessor :delay

  def initialize(server_port)
    @server_port = server_port
    @delay = 0.0
    @listener = TCPServer.new("127.0.0.1", 0)
    @port = @listener.addr[1]
    @thread = Thread.new { loop { serve(@listener.accept) } }
  end

  def url(database) = "postgres://postgres@127.0.0.1:#{port}/#{database}?sslmode=disable"

  private

  def serve(client)
    server = TCPSocket.new("127.0.0.1", @server_port)
    [client, server].each { |s| s.setsockopt(Socket::IPPROTO_TCP, Socket::TCP_NODELAY, 1) }
    Thread.new { pipe(client, server, 0.0) }
    Thread.new { pipe(server, client, nil) }
  end

  def pipe(from, to, fixed)
    loop do
      chunk = from.readpartial(65_536)
      pause = fixed || @delay
      sleep(pause) if pause.positive?
      to.write(chunk)
    end
  rescue IOError, SystemCallError
    [from, to].each { |s| s.close rescue nil } # rubocop:disable Style/RescueModifier
  end
end

# Milliseconds per claim + completion over CLAIMS claims.
def round(runner)
  start = Process.clock_gettime(Process::CLOCK_MONOTONIC)
  CLAIMS.times do
    batch = runner.claim_next
    raise "expected a batch, got #{batch.inspect}" unless batch.is_a?(SchemaFence::Batch)

    runner.complete(batch)
  end
  (Process.clock_gettime(Process::CLOCK_MONOTONIC) - start) * 1000 / CLAIMS
end

puts "claim latency bench: one worker, #{ROUNDS} rounds of #{CLAIMS} claims + completions per path and delay; " \
     "load: #{File.read('/proc/loadavg').split.first(3).join(' ')}"
results = []
cluster = SchemaFence::Cluster.start
begin
  urls = ClaimDatabases.prepare_both(cluster)
  proxy = DelayProxy.new(cluster.port)
  runners = urls.transform_values do |url|
    SchemaFence::Runner.new(url: proxy.url(url.split("/").last), database: "ci")
  end
  runners.each_value { |r| 3.times { round(r) } } # fence, prepare, cache the health readings
  DELAYS.each do |delay|
    proxy.delay = delay
    figures = runners.keys.to_h { |path| [path, Spread.new] }
    ROUNDS.times { runners.each { |path, runner| figures[path] << round(runner) } }
    one = figures["one statement"]
    steps = figures["statement by statement"]
    ms = ->(v) { format("%.3f ms", v) }
    puts format("reply delay %<d>.1f ms: one statement %<one>s | statement by statement %<steps>s " \
                "(min / median / max per claim + completion) | %<x>.2fx faster (medians)",
                d: delay * 1000, one: one.to_s(ms), steps: steps.to_s(ms), x: steps.median / one.median)
    results << (one.median <= steps.median)
  end
  urls.each_value { |url| ClaimDatabases.check_all_executable(url) }
ensure
  cluster.stop
end
Report.summary("claim latency bench", results)
