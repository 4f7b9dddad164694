# frozen_string_literal: true

require "json"

RSpec.describe SchemaFence::Health, :postgres do
  before { Batches.configure }
  after { SchemaFence.configuration.health_indicators.clear }

  let(:url) { Batches.database("health", name: "ci", serves: %w[ci]) }
  let(:worker) { SchemaFence::Worker.new(database: :ci, url:) }

  def held_events
    events = []
    subscriber = ActiveSupport::Notifications.subscribe("migration_held.schema_fence") { |*a| events << a.last }
    yield
    events
  ensure
    ActiveSupport::Notifications.unsubscribe(subscriber)
  end

  # A Prometheus server's instant query API answering +sli+ for every query; records the queries.
  def prometheus(sli, queries)
    app = lambda do |env|
      queries << Rack::Utils.parse_query(env["QUERY_STRING"])["query"]
      body = { status: "success", data: { resultType: "vector", result: [{ metric: {}, value: [Time.now.to_f, sli] }] } }
      [200, { "content-type" => "application/json" }, [JSON.generate(body)]]
    end
    HttpServer.start(app)
  end

  it "holds a migration when Patroni's apdex from Prometheus is below its SLO, and says why in status" do
    queries = []
    base, server = prometheus("0.95", queries)
    SchemaFence.configuration.prometheus_indicator(:patroni_apdex, url: base, slo: 0.99,
                                                                   query: { main: "apdex_main", ci: "apdex_ci" })
    id = Batches.queue(url, "IncrementDone", "ci_builds", :gitlab_ci)

    events = held_events { expect(worker.run_once.status).to eq(:nothing) }

    expect(queries).to eq(["apdex_ci"])
    expect(events.size).to eq(1)
    expect(events.first).to include(database: "ci", migration_id: id, table_name: "ci_builds", indicator: :patroni_apdex,
                                    reason: "patroni_apdex SLI 0.95 is not above its SLO 0.99")
    expect(events.first[:on_hold_until]).to be_within(5).of(Time.now + 600)
    expect(Batches.done_counts(url, "ci_builds")).to eq([100, 0, 0])
    SchemaFence.configuration.database(:ci, url:)
    status = SchemaFence::Status.collect
    held = status.find("ci_#{id}")
    expect(held.hold)
      .to match(/\Aon hold until \d\d:\d\d:\d\d UTC \(in (9m 5\ds|10m 00s)\) because patroni_apdex SLI 0\.95/)
    expect(held.hold).to eq(held.waiting_note)
    expect(status.to_text).to include("active, on hold until")
  ensure
    server&.shutdown
    SchemaFence.configuration.databases.delete("ci")
  end

  it "runs while Prometheus's apdex is above its SLO" do
    base, server = prometheus("0.999", [])
    SchemaFence.configuration.prometheus_indicator(:patroni_apdex, url: base, slo: 0.99, query: "apdex")
    Batches.queue(url, "IncrementDone", "ci_builds", :gitlab_ci)
    expect(held_events { expect(worker.run_once.status).to eq(:ran) }).to be_empty
  ensure
    server&.shutdown
  end

  it "holds a migration when the application's callable gives a reason, and runs when it gives none" do
    busy = true
    SchemaFence.configuration.health_indicator(:deploys) { |database:| "a deploy runs on #{database}" if busy }
    SchemaFence.configuration.health(cache: 0)
    id = Batches.queue(url, "IncrementDone", "ci_builds", :gitlab_ci)
    events = held_events { expect(worker.run_once.status).to eq(:nothing) }
    expect(events.map { |e| [e[:indicator], e[:reason]] }).to eq([[:deploys, "a deploy runs on ci"]])

    busy = false
    PG.connect(url) { |c| c.exec_params("UPDATE batched_background_migrations SET on_hold_until = NULL WHERE id = $1", [id]) }
    expect(worker.run_once.status).to eq(:ran)
  ensure
    SchemaFence.configuration.health(cache: SchemaFence::Health::DEFAULTS[:cache])
  end

  it "hands the WAL receiver's threshold to the core, which refuses a value that is not positive" do
    expect(SchemaFence::Health::DEFAULTS[:max_wal_receiver_backlog_bytes]).to eq(8 * 1024 * 1024)
    expect { SchemaFence::Runner.new(url:, database: "ci", health: { max_wal_receiver_backlog_bytes: 0 }) }
      .to raise_error(SchemaFence::Error, /max_wal_receiver_backlog_bytes.*must be positive, got 0/)
    off = SchemaFence::Runner.new(url:, database: "ci", health: { max_wal_receiver_backlog_bytes: nil })
    expect(off).to be_a(SchemaFence::Runner)
  end

  it "refuses unknown thresholds, naming the known ones" do
    expect { SchemaFence.configuration.health(max_lag: 1) }
      .to raise_error(ArgumentError, /unknown health option max_lag; known: enabled, cache/)
  end
end
