# frozen_string_literal: true

require "pg"

RSpec.describe "workers behind PgBouncer in transaction pooling", :postgres do
  before do
    skip "needs the suite's own cluster: unset DATABASE_URL" if Clusters.external?
    Batches.configure
    SchemaFence.sql_job("BouncerIncrementCiBuilds", "UPDATE ci_builds SET done = done + 1 WHERE id BETWEEN $1 AND $2")
    SchemaFence.sql_job("BouncerIncrementProjects", "UPDATE projects SET done = done + 1 WHERE id BETWEEN $1 AND $2")
  end

  let(:rows) { 3_000 }
  let(:url) { Batches.database("bouncer", name: "main", serves: %w[main ci], rows:) }
  let(:bouncer) { PgBouncer.start(Clusters.primary.port, pool_size: 2) }

  after { bouncer.stop }

  it "runs 6 workers over a pool of 2 with no error, every key once, and leaves nothing on the server sessions" do
    ids = [Batches.queue(url, "BouncerIncrementCiBuilds", "ci_builds", :gitlab_ci, batch_size: 100, sub_batch_size: 40),
           Batches.queue(url, "BouncerIncrementProjects", "projects", :gitlab_main, batch_size: 100, sub_batch_size: 40)]
    pooled = bouncer.url_for(url, query: "prepared_statements=false")
    failures = Queue.new
    threads = Array.new(6) do
      Thread.new do
        worker = SchemaFence::Worker.new(database: :main, url: pooled)
        loop do
          outcome = worker.run_once
          failures << outcome.error if outcome.status == :failed
          break if outcome.status == :nothing
        end
      rescue StandardError => e
        failures << e
      end
    end
    threads.each(&:join)

    expect(Array.new(failures.size) { failures.pop }).to eq([])
    expect(Batches.done_counts(url, "ci_builds")).to eq([0, rows, 0])
    expect(Batches.done_counts(url, "projects")).to eq([0, rows, 0])
    expect(ids.map { |id| Batches.status(url, id) }).to eq(%i[finished finished])

    # Every server connection of the pool, as the next client of the pool finds it.
    clients = Array.new(4) { PG.connect(bouncer.url_for(url)) }
    seen = clients.map do |c|
      c.exec("SELECT current_setting('plan_cache_mode'), current_setting('statement_timeout'), " \
             "current_setting('lock_timeout'), (SELECT count(*) FROM pg_prepared_statements)").values.first
    end
    expect(seen.uniq).to eq([%w[auto 0 0 0]])
  ensure
    clients&.each(&:close)
  end

  it "reads the identity and fetches through the pool outside any transaction" do
    Batches.queue(url, "BouncerIncrementCiBuilds", "ci_builds", :gitlab_ci)
    pooled = bouncer.url_for(url, query: "prepared_statements=false")
    runners = Array.new(4) { SchemaFence::Runner.new(url: pooled, database: "main") }
    results = runners.map { |r| Thread.new { Array.new(50) { [r.fence.first, r.fetch.first.size] } } }.map(&:value)
    expect(results.flatten(1).uniq).to eq([[:work, 1]])
  end
end
