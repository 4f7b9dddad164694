# frozen_string_literal: true

RSpec.describe SchemaFence::Dictionary, :native do
  around do |example|
    Dir.mktmpdir("schema_fence-spec") do |dir|
      @tmp = dir
      example.run
    end
  end

  let(:tmp) { @tmp }

  describe "with a blank or null gitlab_schema (one such entry used to crash Rails boot)" do
    ["projects:", "projects: ~", "projects: ' '", "projects: \"\""].each do |entry|
      it "refuses #{entry.inspect} with the file and line, as a SchemaFence::Error" do
        path = File.join(tmp, "gitlab_schemas.yml")
        File.write(path, "ci_builds: :gitlab_ci\n#{entry}\n")
        expect { described_class.load(path) }
          .to raise_error(SchemaFence::InvalidEntryError, /\A#{Regexp.escape(path)}:2: table "projects": /)
      end
    end
  end

  describe "with GitLab's own table map" do
    let(:dictionary) { described_class.load(GitlabFixtures.path("gitlab_schemas.yml")) }

    it "resolves every one of its 572 tables to the listed gitlab_schema" do
      expected = GitlabFixtures.flat_map
      expect(expected.size).to eq(572)
      actual = expected.keys.to_h { |table| [table, dictionary.table_schema(table)&.to_s] }
      expect(actual).to eq(expected)
      expect(dictionary.size).to eq(572)
    end

    it "lists its gitlab_schemas and the tables of each, sorted" do
      expect(dictionary.schemas).to eq(%i[gitlab_ci gitlab_internal gitlab_main gitlab_shared])
      expect(dictionary.tables(:gitlab_ci).size).to eq(52)
      expect(dictionary.tables("gitlab_main").size).to eq(503)
      expect(dictionary.tables(:gitlab_internal)).to eq(%w[ar_internal_metadata schema_migrations])
    end
  end

  describe "with a db/docs directory" do
    it "resolves every table of GitLab's later db/docs files" do
      pairs = GitlabFixtures.db_docs_pairs
      expect(pairs.size).to eq(87)
      dictionary = described_class.load(GitlabFixtures.write_db_docs(tmp, pairs))
      expect(pairs.keys.to_h { |t| [t, dictionary.table_schema(t).to_s] }).to eq(pairs)
    end

    it "reads views and deleted tables, and ignores batched_background_migrations/" do
      GitlabFixtures.write_db_docs(tmp, { "projects" => "gitlab_main" })
      GitlabFixtures.write_db_docs(tmp, { "postgres_indexes" => "gitlab_shared" }, subdir: "views", key: "view_name")
      GitlabFixtures.write_db_docs(tmp, { "old_builds" => "gitlab_ci" }, subdir: "deleted_tables")
      GitlabFixtures.write(tmp, "db/docs/batched_background_migrations/backfill.yml", "migration_job_name: Backfill\n")
      dictionary = described_class.load(File.join(tmp, "db/docs"))
      expect(dictionary.resolve("postgres_indexes")).to eq(%i[gitlab_shared exact])
      expect(dictionary.resolve("old_builds")).to eq(%i[gitlab_ci deleted])
      expect(dictionary.size).to eq(2)
    end
  end

  describe "the resolution rules, in order" do
    subject(:dictionary) do
      flat = GitlabFixtures.write(tmp, "gitlab_schemas.yml", <<~YAML)
        projects: :gitlab_main
        ci_builds: :gitlab_ci
        p_ci_job_artifacts: :gitlab_ci
        loose_foreign_keys_deleted_records: :gitlab_shared
        analytics: :gitlab_main
        analytics_2: :gitlab_ci
      YAML
      GitlabFixtures.write_db_docs(tmp, { "old_ci_things" => "gitlab_ci" }, subdir: "deleted_tables")
      GitlabFixtures.write_db_docs(tmp, { "members" => "gitlab_main_cell" })
      described_class.load(flat, File.join(tmp, "db/docs"))
    end

    it "1. splits a public. or gitlab_partitions_dynamic. prefix" do
      expect(dictionary.resolve("public.projects")).to eq(%i[gitlab_main exact])
      expect(dictionary.resolve("gitlab_partitions_dynamic.ci_builds")).to eq(%i[gitlab_ci exact])
    end

    it "2. gives pg_* and information_schema.* to gitlab_internal" do
      expect(dictionary.resolve("pg_class")).to eq(%i[gitlab_internal internal])
      expect(dictionary.resolve("information_schema.tables")).to eq(%i[gitlab_internal internal])
      expect(dictionary.resolve("pg_catalog.pg_index")).to eq(%i[gitlab_internal internal])
    end

    it "3. matches a table whose own name ends in _2 exactly, before any suffix is stripped" do
      expect(dictionary.resolve("analytics_2")).to eq(%i[gitlab_ci exact])
    end

    it "4. strips a partition suffix and matches again" do
      expect(dictionary.resolve("analytics_3")).to eq(%i[gitlab_main partition_suffix])
      expect(dictionary.resolve("gitlab_partitions_dynamic.loose_foreign_keys_deleted_records_7"))
        .to eq(%i[gitlab_shared partition_suffix])
    end

    it "5. finds the p_ci_ partitioned parent of a ci_ table" do
      expect(dictionary.resolve("ci_job_artifacts")).to eq(%i[gitlab_ci partitioned_parent])
      expect(dictionary.resolve("gitlab_partitions_dynamic.ci_job_artifacts_102"))
        .to eq(%i[gitlab_ci partitioned_parent])
    end

    it "6. resolves deleted tables" do
      expect(dictionary.resolve("old_ci_things")).to eq(%i[gitlab_ci deleted])
    end

    it "7. gives _test_gitlab_<schema>_ tables that schema, and other _test_ tables gitlab_shared" do
      expect(dictionary.resolve("_test_gitlab_ci_table")).to eq(%i[gitlab_ci test_schema_prefix])
      expect(dictionary.resolve("_test_gitlab_main_cell_table")).to eq(%i[gitlab_main_cell test_schema_prefix])
      expect(dictionary.resolve("_test_anything")).to eq(%i[gitlab_shared test_shared])
    end

    it "8. returns nil for an unknown table, and table_schema! raises naming it and the sources" do
      expect(dictionary.table_schema("unknown_things")).to be_nil
      expect(dictionary.resolve("unknown_things")).to be_nil
      expect { dictionary.table_schema!("unknown_things") }
        .to raise_error(SchemaFence::UnknownTableError, %r{"unknown_things".*gitlab_schemas\.yml.*db/docs})
    end

    it "accepts Symbols as well as Strings, and rejects anything else" do
      expect(dictionary.table_schema(:projects)).to eq(:gitlab_main)
      expect(dictionary.table_schema!(:projects)).to eq(:gitlab_main)
      expect { dictionary.table_schema(42) }.to raise_error(TypeError, /String or Symbol/)
    end
  end

  describe "bad input" do
    it "names the file and line of malformed YAML" do
      file = GitlabFixtures.write(tmp, "map.yml", "projects: :gitlab_main\nci_builds: [oops\n")
      expect { described_class.load(file) }
        .to raise_error(SchemaFence::MalformedYamlError, /\A#{Regexp.escape(file)}:\d+:\d+: malformed YAML/)
    end

    it "names both files when two sources give a table two schemas" do
      flat = GitlabFixtures.write(tmp, "map.yml", "ci_builds: :gitlab_ci\n")
      docs = GitlabFixtures.write_db_docs(tmp, { "ci_builds" => "gitlab_main" })
      expect { described_class.load(flat, docs) }
        .to raise_error(SchemaFence::ConflictingSchemaError, /#{Regexp.escape(flat)}.*ci_builds\.yml/)
    end

    it "refuses a table naming a schema the definitions do not define" do
      defs = GitlabFixtures.write(tmp, "db/gitlab_schemas/gitlab_main.yaml", "name: gitlab_main\n")
      docs = GitlabFixtures.write_db_docs(tmp, { "widgets" => "gitlab_mian" })
      expect { described_class.load(docs, File.dirname(defs)) }
        .to raise_error(SchemaFence::UndefinedSchemaError, /widgets.*gitlab_mian/)
    end

    it "names the missing key of a db/docs file" do
      GitlabFixtures.write(tmp, "db/docs/widgets.yml", "table_name: widgets\n")
      expect { described_class.load(File.join(tmp, "db/docs")) }
        .to raise_error(SchemaFence::MissingKeyError, /widgets\.yml: missing key `gitlab_schema`/)
      GitlabFixtures.write(tmp, "db/docs/widgets.yml", "gitlab_schema: gitlab_main\n")
      expect { described_class.load(File.join(tmp, "db/docs")) }
        .to raise_error(SchemaFence::MissingKeyError, /missing key `table_name`/)
    end

    it "names a path it cannot read" do
      expect { described_class.load(File.join(tmp, "nope.yml")) }
        .to raise_error(SchemaFence::SourceReadError, /nope\.yml: cannot read/)
    end

    it "gives every error a SchemaFence::Error ancestor" do
      expect(SchemaFence::UnknownTableError.ancestors).to include(SchemaFence::Error, StandardError)
    end
  end
end
