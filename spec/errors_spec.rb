# frozen_string_literal: true

RSpec.describe "schema_fence's errors", :native do
  it "have a Ruby class for every kind the core raises, resolved when the extension loads" do
    expect(SchemaFence::ERROR_KINDS).to include("UnknownTable", "CrossDatabaseAccess", "Connection", "CutoverTarget")
    expect(SchemaFence::ERROR_KINDS).to be_frozen
    SchemaFence::ERROR_KINDS.each do |kind|
      expect(SchemaFence.const_get("#{kind}Error")).to be < SchemaFence::Error
    end
  end

  it "carry the table and gitlab_schema of a refused statement besides the message" do
    dictionary = SchemaFence::Dictionary.load(GitlabFixtures.path("gitlab_schemas.yml"))
    guard = SchemaFence::Guard.new(dictionary:, allowed: %i[gitlab_main gitlab_shared gitlab_internal], tag: :gitlab_main)
    expect { guard.check("UPDATE ci_builds SET status = 'x'") }.to raise_error(SchemaFence::CrossDatabaseAccessError) do |e|
      expect([e.table, e.gitlab_schema, e.sqlstate]).to eq(["ci_builds", "gitlab_ci", nil])
    end
  end

  it "carry the database a topology does not define" do
    topology = SchemaFence::Topology.load(GitlabFixtures.path("database_connections"))
    expect { topology.allowed_schemas([:sec]) }.to raise_error(SchemaFence::UnknownDatabaseError) do |e|
      expect(e.database).to eq("sec")
    end
  end
end

RSpec.describe "schema_fence's errors from PostgreSQL", :postgres do
  it "carry the SQLSTATE the server sent" do
    skip "needs the suite's own cluster: unset DATABASE_URL" if Clusters.external?
    url = Clusters.primary.url("no_such_database_#{Process.pid}")
    expect { SchemaFence::Identity.read(url) }.to raise_error(SchemaFence::ConnectionError) do |e|
      expect(e.sqlstate).to eq("3D000") # invalid_catalog_name
      expect(e.message).to include("no_such_database")
    end
  end
end
