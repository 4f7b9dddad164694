# frozen_string_literal: true

RSpec.describe SchemaFence::Topology, :native do
  subject(:topology) { described_class.load(GitlabFixtures.path("database_connections")) }

  it "reads GitLab's database connections" do
    expect(topology.databases.map(&:name)).to eq(%w[ci main])
    ci = topology.database(:ci)
    expect(ci.gitlab_schemas).to include(:gitlab_ci, :gitlab_shared, :gitlab_internal)
    expect(ci.lock_gitlab_schemas).to include(:gitlab_main)
    expect(ci.fallback_database).to eq("main")
    expect(topology.database("main").fallback_database).to be_nil
  end

  it "gives the allowed schemas of a database as the union of the schemas it serves" do
    expect(topology.allowed_schemas([:ci])).to eq(%i[gitlab_ci gitlab_ci_cell_local gitlab_internal gitlab_shared])
    both = topology.allowed_schemas(%w[main ci])
    expect(both).to include(:gitlab_main, :gitlab_ci)
    expect(both).to eq(both.sort)
  end

  it "knows which databases share a physical database while they fall back" do
    expect(topology.served_with(:main)).to eq(%w[main ci])
    expect(topology.served_with(:ci)).to eq(%w[ci])
  end

  it "refuses a database name it does not define" do
    expect { topology.allowed_schemas([:sec]) }.to raise_error(SchemaFence::UnknownDatabaseError, /"sec".*ci, main/)
  end

  it "refuses a directory without connection files" do
    Dir.mktmpdir do |dir|
      expect { described_class.load(dir) }.to raise_error(SchemaFence::TopologyError, /no database connection files/)
    end
  end
end
