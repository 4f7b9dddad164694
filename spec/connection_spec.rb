# frozen_string_literal: true

require "pg"
require "socket"

RSpec.describe SchemaFence::Connection do
  describe ".url_for_config" do
    it "keeps every connection key of an ActiveRecord configuration" do
      url = described_class.url_for_config(
        host: "/var/opt/gitlab/postgresql", port: 5432, database: "gitlab production", username: "gitlab",
        password: "p@ss word", sslmode: "verify-full", sslrootcert: "/etc/ssl/ca.pem", sslcert: "/c.crt",
        sslkey: "/c.key", connect_timeout: 3, keepalives_idle: 30,
        variables: { statement_timeout: "15s", lock_timeout: :default }, schema_search_path: "public",
        prepared_statements: false, application_name: "rails"
      )
      expect(url).to start_with("postgresql:///gitlab%20production?host=%2Fvar%2Fopt%2Fgitlab%2Fpostgresql&port=5432")
      expect(url).to include("user=gitlab", "password=p%40ss%20word", "sslmode=verify-full",
                             "sslrootcert=%2Fetc%2Fssl%2Fca.pem", "sslcert=%2Fc.crt", "sslkey=%2Fc.key",
                             "connect_timeout=3", "keepalives_idle=30", "prepared_statements=false",
                             "options=-c%20statement_timeout%3D15s%20-c%20search_path%3Dpublic")
      expect(url).not_to include("lock_timeout", "rails")
    end

    it "escapes spaces and backslashes in variables as libpq's options need" do
      url = described_class.url_for_config(host: "db", database: "d", variables: { "x.y" => 'a b\c' })
      expect(URI.decode_www_form_component(url[/options=([^&]*)/, 1])).to eq('-c x.y=a\ b\\\\c')
    end
  end

  describe "the core's connection from it", :postgres do
    it "reaches a Unix-socket host (a socket directory, GitLab Omnibus's default) and names itself" do
      skip "needs the suite's own cluster: unset DATABASE_URL" if Clusters.external?
      Batches.configure
      tcp_url = Batches.database("socket_host", name: "main", serves: %w[main ci])
      cluster = Clusters.primary
      name = URI.parse(tcp_url).path.delete_prefix("/")
      url = described_class.url_for_config(host: cluster.dir, port: cluster.port, username: "postgres",
                                           database: name, sslmode: "require")
      runner = SchemaFence::Runner.new(url:, database: "main")
      expect(runner.fence.first).to eq(:work)
      rows = PG.connect(tcp_url) do |c|
        c.exec("SELECT client_addr IS NULL, backend_type FROM pg_stat_activity " \
               "WHERE application_name = 'schema_fence/main/runner' AND datname = current_database()").values
      end
      expect(rows).to eq([["t", "client backend"]])
    end

    it "refuses a connection parameter it does not understand, by name" do
      runner = SchemaFence::Runner.new(url: "postgres://localhost/x?service=prod", database: "main",
                                       topology: SchemaFence::Topology.load(GitlabFixtures.path("database_connections")))
      expect { runner.fence }.to raise_error(SchemaFence::InvalidArgumentError, /"service" is not supported/)
    end
  end
end

RSpec.describe "the core's connect timeout" do
  it "bounds the whole connection, also against a server that accepts and then says nothing" do
    silent = TCPServer.new("127.0.0.1", 0) # the kernel completes the handshake; nobody answers
    runner = SchemaFence::Runner.new(url: "postgres://postgres@127.0.0.1:#{silent.addr[1]}/x?connect_timeout=1",
                                     database: "main",
                                     topology: SchemaFence::Topology.load(GitlabFixtures.path("database_connections")))
    started = Process.clock_gettime(Process::CLOCK_MONOTONIC)
    expect { runner.fence }.to raise_error(SchemaFence::ConnectionError,
                                           /no answer from the server within connect_timeout \(1s\)/)
    expect(Process.clock_gettime(Process::CLOCK_MONOTONIC) - started).to be_between(0.9, 2.5)
  ensure
    silent&.close
  end
end
