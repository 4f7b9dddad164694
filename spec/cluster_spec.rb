# frozen_string_literal: true

require "open3"
require "pg"
require "rbconfig"
require "socket"
require_relative "support/clusters"

RSpec.describe SchemaFence::Cluster, :postgres do
  def query(url, sql)
    PG.connect(url) { |conn| conn.exec(sql).values }
  end

  def accepts?(port)
    Socket.tcp("127.0.0.1", port, connect_timeout: 1).close
    true
  rescue SystemCallError
    false
  end

  def eventually(timeout: 30)
    deadline = Process.clock_gettime(Process::CLOCK_MONOTONIC) + timeout
    loop do
      return true if yield
      return false if Process.clock_gettime(Process::CLOCK_MONOTONIC) > deadline

      sleep 0.05
    end
  end

  describe "Clusters.fresh_database" do
    it "gives each caller a new, empty database of its own" do
      first = Clusters.fresh_database("cluster_spec")
      second = Clusters.fresh_database("cluster_spec")

      expect(first).not_to eq(second)
      query(first, "CREATE TABLE only_here (id int)")
      expect(query(second, "SELECT to_regclass('only_here')")).to eq([[nil]])
      expect(query(first, "SELECT current_database()").first.first).to start_with("cluster_spec_")
    end
  end

  describe "#create_database" do
    it "quotes the name and refuses a duplicate with the server's message" do
      cluster = Clusters.primary
      skip "DATABASE_URL names an existing server" unless cluster.is_a?(described_class)

      name = "we\"ird; DROP DATABASE postgres #{SecureRandom.hex(3)}"
      url = cluster.create_database(name)
      expect(query(url, "SELECT current_database()")).to eq([[name]])
      expect { cluster.create_database(name) }
        .to raise_error(SchemaFence::ClusterError, /could not create database .*already exists/)
    end
  end

  describe "a cluster of its own" do
    it "runs with the test settings on a port of 127.0.0.1" do
      Clusters.with_cluster do |cluster|
        settings = query(cluster.url, "SELECT current_setting('fsync'), current_setting('wal_level'), " \
                                      "inet_server_addr()::text")
        expect(settings).to eq([%w[off logical 127.0.0.1/32]])
        expect(cluster.url("app")).to eq("postgres://postgres@127.0.0.1:#{cluster.port}/app")
        expect(File.directory?(cluster.data_dir)).to be(true)
        expect(cluster.in_recovery?).to be(false)
      end
    end

    it "takes extra settings" do
      Clusters.with_cluster(settings: { synchronous_commit: true, log_line_prefix: "it's %p " }) do |cluster|
        expect(query(cluster.url, "SELECT current_setting('synchronous_commit'), current_setting('log_line_prefix')"))
          .to eq([["on", "it's %p "]])
      end
    end

    it "makes a replica that streams rows written on the primary" do
      Clusters.with_cluster do |primary|
        url = primary.create_database("app")
        query(url, "CREATE TABLE items (id int PRIMARY KEY); INSERT INTO items VALUES (1)")
        replica = primary.replica
        begin
          expect(replica.in_recovery?).to be(true)
          expect(replica.port).not_to eq(primary.port)
          query(url, "INSERT INTO items VALUES (2)")
          expect(eventually { query(replica.url("app"), "SELECT count(*) FROM items") == [["2"]] }).to be(true)
          expect { query(replica.url("app"), "INSERT INTO items VALUES (3)") }
            .to raise_error(PG::ReadOnlySqlTransaction)
        ensure
          replica.stop
        end
      end
    end

    it "keeps the data across a restart and a kill" do
      Clusters.with_cluster(settings: { synchronous_commit: true }) do |cluster|
        query(cluster.url, "CREATE TABLE kept (v text); INSERT INTO kept VALUES ('before')")
        cluster.restart
        expect(query(cluster.url, "SELECT v FROM kept")).to eq([["before"]])
        cluster.kill
        expect(accepts?(cluster.port)).to be(false)
        cluster.restart
        expect(query(cluster.url, "SELECT v FROM kept")).to eq([["before"]])
      end
    end

    it "stops the server and removes its directory on stop" do
      cluster = Clusters.start_cluster
      dir = cluster.dir
      port = cluster.port
      cluster.stop

      expect(File.exist?(dir)).to be(false)
      expect(accepts?(port)).to be(false)
      expect(cluster).to be_stopped
      expect { cluster.url }.to raise_error(SchemaFence::ClusterError, /stopped and removed/)
      expect(described_class.started).not_to include(cluster)
      expect { cluster.stop }.not_to raise_error
    end
  end

  describe "cleanup of other processes' clusters" do
    before { skip Clusters::OWN_CLUSTER_REASON % "DATABASE_URL" if Clusters.external? }

    let(:lib) { File.expand_path("../lib", __dir__) }

    def child(script)
      Open3.popen2(RbConfig.ruby, "-I", lib, "-rschema_fence/testing", "-e", script)
    end

    it "stops a process's clusters when it exits" do
      out, status = Open3.capture2(RbConfig.ruby, "-I", lib, "-rschema_fence/testing", "-e",
                                   "c = SchemaFence::Cluster.start; puts [c.dir, c.port].join(' ')")
      expect(status).to be_success
      dir, port = out.split
      expect(File.exist?(dir)).to be(false)
      expect(accepts?(Integer(port))).to be(false)
    end

    it "sweeps the clusters of a process killed with SIGKILL on the next start" do
      stdin, stdout, wait = child("c = SchemaFence::Cluster.start; puts [c.dir, c.port].join(' '); " \
                                  "$stdout.flush; sleep")
      dir, port = stdout.gets.split
      Process.kill(:KILL, wait.pid)
      wait.join
      [stdin, stdout].each(&:close)
      expect(File.directory?(dir)).to be(true)

      Clusters.with_cluster do
        expect(File.exist?(dir)).to be(false)
        expect(accepts?(Integer(port))).to be(false)
      end
    end
  end
end
