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

  def wait_for(what)
    deadline = Time.now + 30
    sleep 0.05 until yield || (raise "timed out waiting for #{what}" if Time.now > deadline)
  end

  def unwritten_wal(connection)
    connection.exec("SELECT coalesce(max(pg_wal_lsn_diff(pg_current_wal_lsn(), write_lsn)), 0)::bigint " \
                    "FROM pg_stat_replication WHERE state = 'streaming'").getvalue(0, 0).to_i
  end

  it "holds a migration while a standby's WAL receiver does not take the WAL, and says so in status" do
    Clusters.with_cluster do |cluster|
      url = cluster.create_database("health_receiver")
      PG.connect(url) do |c|
        c.exec("CREATE TABLE ci_builds (id bigint PRIMARY KEY, done int NOT NULL DEFAULT 0)")
        c.exec("INSERT INTO ci_builds (id) SELECT generate_series(1, 100)")
      end
      SchemaFence::Install.up(url, name: "ci", serves: %w[ci])
      id = Batches.queue(url, "IncrementDone", "ci_builds", :gitlab_ci)
      standby = cluster.replica
      primary = PG.connect(url)
      wait_for("the standby to stream") do
        primary.exec("SELECT count(*) FROM pg_stat_replication WHERE state = 'streaming' AND write_lsn IS NOT NULL")
               .getvalue(0, 0) == "1"
      end
      receiver = PG.connect(standby.url("health_receiver")) do |c|
        Integer(c.exec("SELECT pid FROM pg_stat_wal_receiver").getvalue(0, 0))
      end
      # The standby's real WAL receiver, stopped: it takes no more WAL while the primary writes.
      Process.kill(:STOP, receiver)
      primary.exec("CREATE TABLE filler AS SELECT g, repeat('x', 100) AS pad FROM generate_series(1, 50000) g")
      wait_for("WAL the standby has not written") { unwritten_wal(primary) > 1_000_000 }
      SchemaFence.configuration.health(max_wal_receiver_backlog_bytes: 1_000_000)

      events = held_events { expect(SchemaFence::Worker.new(database: :ci, url:).run_once.status).to eq(:nothing) }

      expect(events.map { |e| e[:indicator] }).to eq([:wal_receiver])
      expect(events.first[:reason]).to match(/\Athe WAL receiver of standby ".*" has not written \d+ bytes of WAL/)
      SchemaFence.configuration.database(:ci, url:)
      expect(SchemaFence::Status.collect.find("ci_#{id}").hold).to end_with("because #{events.first[:reason]}")
    ensure
      Process.kill(:CONT, receiver) if receiver
      primary&.close
      SchemaFence.configuration.databases.delete("ci")
      default = SchemaFence::Health::DEFAULTS[:max_wal_receiver_backlog_bytes]
      SchemaFence.configuration.health(max_wal_receiver_backlog_bytes: default)
    end
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
