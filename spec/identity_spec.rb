# frozen_string_literal: true

require "pg"

RSpec.describe SchemaFence::Identity, :postgres do
  before { Batches.configure }

  def tables(url, rows)
    PG.connect(url) do |c|
      c.exec("CREATE TABLE ci_builds (id bigint PRIMARY KEY, done int NOT NULL DEFAULT 0)")
      c.exec("INSERT INTO ci_builds (id) SELECT generate_series(1, #{Integer(rows)})")
    end
  end

  it "keeps workers running on a replica of main promoted to be main (an HA failover in the same cluster)" do
    Clusters.with_cluster do |cluster|
      url = cluster.create_database("ha_main")
      tables(url, 300)
      SchemaFence::Install.up(url, name: "main", serves: %w[main ci])
      id = Batches.queue(url, "IncrementDone", "ci_builds", :gitlab_ci)
      replica = cluster.replica
      promoted = replica.url("ha_main")
      PG.connect(promoted) { |c| c.exec("SELECT pg_promote()") }
      cluster.stop

      Batches.drain(SchemaFence::Worker.new(database: :main, url: promoted))
      expect(Batches.done_counts(promoted, "ci_builds")).to eq([0, 300, 0])
      expect(Batches.status(promoted, id)).to eq(:finished)
    ensure
      replica&.stop
    end
  end

  it "refuses a CREATE DATABASE ... TEMPLATE copy naming both places, until it is adopted" do
    url = Batches.database("identity_original", name: "main", serves: %w[main ci])
    Batches.queue(url, "IncrementDone", "ci_builds", :gitlab_ci)
    name = URI.parse(url).path.delete_prefix("/")
    copy_name = "#{name[0, 50]}_copy"
    PG.connect(url.sub(%r{/[^/?]+\z}, "/postgres")) { |c| c.exec(%(CREATE DATABASE "#{copy_name}" TEMPLATE "#{name}")) }
    copy = url.sub(%r{/[^/?]+\z}, "/#{copy_name}")
    oids = [url, copy].map do |u|
      PG.connect(u) { |c| c.exec("SELECT oid FROM pg_database WHERE datname = current_database()").getvalue(0, 0) }
    end

    expect { SchemaFence::Worker.new(database: :main, url: copy).run_once }
      .to raise_error(SchemaFence::IdentityMismatchError) { |e|
        expect(e.message).to include("database oid #{oids[0]}", "database oid #{oids[1]}", "identity:adopt")
      }
    expect(Batches.done_counts(copy, "ci_builds")).to eq([100, 0, 0])

    adopted = described_class.adopt(copy, name: :main, serves: %i[main ci])
    expect([adopted.name, adopted.serves, adopted.epoch]).to eq(["main", %w[main ci], 1])
    Batches.drain(SchemaFence::Worker.new(database: :main, url: copy))
    expect(Batches.done_counts(copy, "ci_builds")).to eq([0, 100, 0])
    expect(Batches.done_counts(url, "ci_builds")).to eq([100, 0, 0])
  end

  it "rejects writes to the identity table other than the library's own stamp" do
    url = Batches.database("identity_forged", name: "ci", serves: %w[ci])
    PG.connect(url) do |c|
      expect { c.exec("UPDATE schema_fence_identity SET name = 'main', serves = '{main}'") }
        .to raise_error(PG::InsufficientPrivilege, /written only by schema_fence itself/)
      c.exec("SET schema_fence.stamp = '1'")
      expect { c.exec("DELETE FROM schema_fence_identity") }.to raise_error(PG::InsufficientPrivilege)
    end
    expect(described_class.read(url).name).to eq("ci")
  end

  it "adopts from rake, and refuses a name outside what it serves with one line" do
    url = Batches.database("identity_rake", name: "ci", serves: %w[ci])
    require "rake"
    Rake.application = Rake::Application.new
    load File.expand_path("../lib/schema_fence/tasks/schema_fence.rake", __dir__)
    ENV["URL"] = url
    expect { Rake::Task["schema_fence:identity:adopt"].invoke("main", "ci") }
      .to raise_error(SystemExit).and output(/must be one of the databases it serves/).to_stderr
    Rake::Task["schema_fence:identity:adopt"].reenable
    expect { Rake::Task["schema_fence:identity:adopt"].invoke("ci", "ci") }
      .to output("adopted: ci serving ci at epoch 1\n").to_stdout
  ensure
    ENV.delete("URL")
  end
end
