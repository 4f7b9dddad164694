# frozen_string_literal: true

# The behaviours GitLab's spec/lib/gitlab/database/gitlab_schema_spec.rb asserts of
# Gitlab::Database::GitlabSchema.table_schema / table_schema!, on this library's dictionary.
RSpec.describe "GitLab's gitlab_schema_spec.rb, on SchemaFence::Dictionary", :native do
  around do |example|
    Dir.mktmpdir("schema_fence-gitlab-schema") do |dir|
      @tmp = dir
      example.run
    end
  end

  # GitLab's schemas are known from their definitions (db/gitlab_schemas/*.yaml), as GitLab knows them.
  let(:schemas) do
    %w[gitlab_main gitlab_ci gitlab_main_clusterwide gitlab_main_cell gitlab_main_org gitlab_pm gitlab_sec
       gitlab_shared gitlab_internal]
  end

  subject(:dictionary) do
    flat = GitlabFixtures.write(@tmp, "gitlab_schemas.yml", <<~YAML)
      ci_builds: :gitlab_ci
      ci_runner_machine_builds: :gitlab_ci
      audit_events_part_5fc467ac26: :gitlab_main
      projects: :gitlab_main
    YAML
    schemas.each { |name| GitlabFixtures.write(@tmp, "db/gitlab_schemas/#{name}.yaml", "name: #{name}\n") }
    SchemaFence::Dictionary.load(flat, File.join(@tmp, "db/gitlab_schemas"))
  end

  # GitLab's table of names and the gitlab_schema each maps to.
  {
    "ci_builds" => :gitlab_ci,
    "ci_runner_machine_builds_100" => :gitlab_ci,
    "public.ci_builds" => :gitlab_ci,
    "gitlab_partitions_dynamic.ci_runner_machine_builds_100" => :gitlab_ci,
    "information_schema.columns" => :gitlab_internal,
    "audit_events_part_5fc467ac26" => :gitlab_main,
    "_test_gitlab_main_table" => :gitlab_main,
    "_test_gitlab_ci_table" => :gitlab_ci,
    "_test_gitlab_main_clusterwide_table" => :gitlab_main_clusterwide,
    "_test_gitlab_main_cell_table" => :gitlab_main_cell,
    "_test_gitlab_main_org_table" => :gitlab_main_org,
    "_test_gitlab_pm_table" => :gitlab_pm,
    "_test_gitlab_sec_table" => :gitlab_sec,
    "_test_my_table" => :gitlab_shared,
    "pg_attribute" => :gitlab_internal
  }.each do |name, gitlab_schema|
    it "maps #{name} to #{gitlab_schema}, with table_schema and table_schema! alike" do
      expect(dictionary.table_schema(name)).to eq(gitlab_schema)
      expect(dictionary.table_schema!(name)).to eq(gitlab_schema)
    end
  end

  # A difference on purpose: GitLab drops any schema prefix (`my_schema.ci_builds` is gitlab_ci); here a
  # schema other than public and GitLab's partition schemas is another table, unknown to the dictionary
  # unless it names it (the guard must not take `my_schema.ci_builds` for the ci table).
  %w[my_schema.ci_builds my_schema.ci_runner_machine_builds_100 my_schema._test_gitlab_main_table].each do |name|
    it "gives nil for #{name}, in a PostgreSQL schema the dictionary does not name (GitLab: its table's schema)" do
      expect(dictionary.table_schema(name)).to be_nil
    end
  end

  it "gives nil for a name it cannot map, an index name among them" do
    expect(dictionary.table_schema("unknown_table")).to be_nil
    expect(dictionary.table_schema("index_on_projects")).to be_nil
  end

  it "raises for a name it cannot map with table_schema!, naming the table and saying to add it to the dictionary" do
    expect { dictionary.table_schema!("non_existing_table") }
      .to raise_error(SchemaFence::UnknownTableError, /"non_existing_table".*gitlab_schemas\.yml/)
  end
end
