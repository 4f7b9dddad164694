# frozen_string_literal: true

require "pg"

# The cutover and the cleanup through a real PgBouncer in transaction pooling: the cleanup works
# there (one transaction, nothing left on the server sessions); the cutover needs each server
# itself and refuses a pooled URL, naming it, before it reads or changes anything.
RSpec.describe "the cutover and the cleanup behind PgBouncer", :postgres do
  before do
    skip "needs the suite's own cluster: unset DATABASE_URL" if Clusters.external?
    Batches.configure
  end

  let(:url) { Batches.database("pooled_cutover", name: "main", serves: %w[main ci]) }
  let(:bouncer) { PgBouncer.start(Clusters.primary.port, pool_size: 1) }

  after { bouncer.stop }

  def cutover(source_url:, target_url:)
    SchemaFence::Cutover.new(source_url:, target_url:)
  end

  def cutover_log_rows
    PG.connect(url) do |c|
      c.exec("SELECT count(*) FROM schema_fence_cutover_log").getvalue(0, 0).to_i
    rescue PG::UndefinedTable
      0
    end
  end

  it "refuses a target URL through the pooler, naming it and asking for a direct connection" do
    pooled = bouncer.url_for(url)
    named = %r{the ci database's URL \(127\.0\.0\.1:#{bouncer.port}/\w+\) goes through a connection pooler}
    expect { cutover(source_url: url, target_url: pooled).plan }
      .to raise_error(SchemaFence::CutoverThroughPoolerError, named)
    expect { cutover(source_url: url, target_url: pooled).plan }
      .to raise_error(/answers on port #{Clusters.primary.port} while the URL names port #{bouncer.port}.*direct connection/)
  end

  it "refuses a source URL through the pooler before any step, and changes nothing" do
    before = SchemaFence::Identity.read(url).to_h.slice(:name, :serves, :epoch)
    pooled = bouncer.url_for(url, query: "prepared_statements=false")
    cut = cutover(source_url: pooled, target_url: url)
    expect { cut.execute }
      .to raise_error(SchemaFence::CutoverThroughPoolerError, /main database's URL.*prepared_statements=false/)
    expect { cut.rollback }.to raise_error(SchemaFence::CutoverThroughPoolerError)
    expect(cutover_log_rows).to eq(0)
    expect(SchemaFence::Identity.read(url).to_h.slice(:name, :serves, :epoch)).to eq(before)
  end

  it "lists and deletes stale rows through the pooler, leaving no prepared statement on the server session" do
    stale = Batches.queue(url, "IncrementDone", "ci_builds", :gitlab_ci)
    live = Batches.queue(url, "IncrementDone", "projects", :gitlab_main)
    # ci moved away: its row stayed behind on main.
    Batches.stamp!(url, "serves = ARRAY['main']")
    pooled = bouncer.url_for(url, query: "prepared_statements=false")

    expect(SchemaFence::Cutover.cleanup(pooled).map(&:id)).to eq([stale])
    expect(SchemaFence::Cutover.cleanup(pooled, delete: true).map(&:id)).to eq([stale])
    expect(SchemaFence::Cutover.cleanup(pooled)).to eq([])
    expect([Batches.status(url, stale), Batches.status(url, live)]).to eq([nil, :active])

    # The pool's one server connection, as its next client finds it. PgBouncer 1.21 and newer
    # prepare clients' named statements on the server under names of their own (PGBOUNCER_<n>) and
    # keep them for reuse: those are the pooler's, not left by a client.
    leftovers = PG.connect(bouncer.url_for(url)) do |c|
      c.exec("SELECT (SELECT count(*) FROM pg_prepared_statements WHERE name NOT LIKE 'PGBOUNCER\\_%'), " \
             "current_setting('statement_timeout')").values.first
    end
    expect(leftovers).to eq(%w[0 0])
  end
end
