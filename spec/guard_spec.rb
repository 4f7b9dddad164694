# frozen_string_literal: true

# The statement guard (docs/architecture.md section 9) with GitLab's own table map: a connection of `main`
# (gitlab_main, gitlab_shared, gitlab_internal) running a gitlab_main migration.
RSpec.describe SchemaFence::Guard, :native do
  let(:dictionary) { SchemaFence::Dictionary.load(GitlabFixtures.path("gitlab_schemas.yml")) }
  let(:main_schemas) { %i[gitlab_main gitlab_shared gitlab_internal] }
  let(:guard) { described_class.new(dictionary:, allowed: main_schemas, tag: :gitlab_main) }

  def refusal(sql)
    expect { guard.check(sql) }.to raise_error(SchemaFence::CrossDatabaseAccessError)
    guard.check(sql)
  rescue SchemaFence::CrossDatabaseAccessError => e
    e.message
  end

  describe "#check" do
    it "lets main, shared and internal tables through and returns nil" do
      [
        "SELECT * FROM projects WHERE id BETWEEN $1 AND $2",
        "UPDATE issues SET title = 'x' FROM projects WHERE projects.id = issues.project_id",
        "DELETE FROM notes USING projects WHERE notes.project_id = projects.id",
        "INSERT INTO loose_foreign_keys_deleted_records (id) SELECT id FROM projects",
        "UPDATE batched_background_migrations SET status = 1 WHERE id = 1",
        "INSERT INTO schema_migrations (version) VALUES ('1')",
        "SELECT * FROM pg_class, information_schema.columns",
        "WITH recent AS (SELECT id FROM issues) SELECT * FROM recent",
        "SET statement_timeout = 0", "SELECT 1", "BEGIN", "SAVEPOINT s1", "SHOW search_path"
      ].each { |sql| expect(guard.check(sql)).to be_nil, sql }
    end

    it "refuses reading ci_builds, naming the table and both schemas" do
      message = refusal("SELECT * FROM ci_builds WHERE id = $1")
      expect(message).to include('"ci_builds"', "gitlab_ci", "gitlab_main, gitlab_shared, gitlab_internal")
      expect(message).to include("statement not sent", "SELECT * FROM ci_builds WHERE id = $1")
    end

    it "refuses ci tables reached through joins, subqueries, CTEs, INSERT ... SELECT and FOR UPDATE" do
      {
        "SELECT * FROM projects JOIN ci_pipelines ON ci_pipelines.project_id = projects.id" => "ci_pipelines",
        "SELECT * FROM projects WHERE id IN (SELECT project_id FROM ci_builds)" => "ci_builds",
        "SELECT * FROM projects WHERE EXISTS (SELECT 1 FROM ci_stages)" => "ci_stages",
        "WITH b AS (SELECT * FROM ci_job_artifacts) SELECT * FROM b" => "ci_job_artifacts",
        "INSERT INTO issues (id) SELECT id FROM ci_builds" => "ci_builds",
        "UPDATE projects SET x = 1 FROM ci_runners WHERE true" => "ci_runners",
        "DELETE FROM projects USING ci_builds WHERE true" => "ci_builds",
        "SELECT * FROM ci_builds FOR UPDATE SKIP LOCKED" => "ci_builds",
        "WITH d AS (DELETE FROM ci_builds RETURNING id) SELECT * FROM d" => "ci_builds",
        "SELECT 1; SELECT * FROM ci_pipelines" => "ci_pipelines"
      }.each do |sql, table|
        expect(refusal(sql)).to include(%("#{table}"), "gitlab_ci"), sql
      end
    end

    it "resolves schema-qualified and partition names" do
      expect(guard.check("SELECT * FROM public.projects")).to be_nil
      expect(guard.check("SELECT * FROM gitlab_partitions_dynamic.web_hook_logs_202301")).to be_nil
      expect(refusal("SELECT * FROM public.ci_builds")).to include('"public.ci_builds"', "gitlab_ci")
      expect(refusal("SELECT * FROM gitlab_partitions_dynamic.ci_builds_101"))
        .to include('"gitlab_partitions_dynamic.ci_builds_101"', "gitlab_ci")
    end

    it "allows writing a gitlab_shared table but refuses writing another schema's table" do
      expect(guard.check("DELETE FROM loose_foreign_keys_deleted_records WHERE id = 1")).to be_nil
      both = described_class.new(dictionary:, allowed: %w[gitlab_main gitlab_ci gitlab_shared], tag: "gitlab_ci")
      expect(both.check("UPDATE ci_builds SET x = 1 FROM projects WHERE true")).to be_nil
      expect { both.check("UPDATE projects SET x = 1") }
        .to raise_error(SchemaFence::CrossDatabaseAccessError, /writes table "projects" of gitlab_main.*restricted to gitlab_ci/)
    end

    it "refuses a table the dictionary does not know" do
      expect(refusal("SELECT * FROM no_such_table")).to include('"no_such_table"', "no gitlab_schema in the dictionary")
    end

    it "raises GuardParseError with the parser's message for SQL that does not parse" do
      expect { guard.check("SELEC * FROM projects") }
        .to raise_error(SchemaFence::GuardParseError, /syntax error at or near "SELEC"/)
      expect(SchemaFence::GuardParseError.ancestors).to include(SchemaFence::Error)
    end

    it "gives the same verdict from its cache" do
      expect(guard.cache_size).to eq(0)
      2.times do
        expect(guard.check("SELECT * FROM projects")).to be_nil
        expect { guard.check("SELECT * FROM ci_builds") }.to raise_error(SchemaFence::CrossDatabaseAccessError)
      end
      expect(guard.cache_size).to eq(2)
    end

    it "keeps its dictionary alive without other references" do
      guard = described_class.new(dictionary: SchemaFence::Dictionary.load(GitlabFixtures.path("gitlab_schemas.yml")),
                                  allowed: main_schemas, tag: :gitlab_main)
      GC.start
      GC.compact if GC.respond_to?(:compact)
      expect(guard.dictionary.size).to eq(572)
      expect(guard.check("SELECT * FROM projects")).to be_nil
    end
  end

  describe "#tables" do
    it "lists what a statement reads and writes, without CTE names" do
      sql = "WITH moved AS (DELETE FROM ci_builds RETURNING *) " \
            "INSERT INTO issues SELECT * FROM moved JOIN public.projects p ON true"
      expect(guard.tables(sql)).to eq(read: ["public.projects"], written: %w[ci_builds issues])
    end
  end

  describe ".new" do
    it "takes Symbols or Strings and checks its arguments" do
      expect(guard.allowed).to eq(main_schemas)
      expect(guard.tag).to eq(:gitlab_main)
      expect { described_class.new(dictionary:, allowed: [], tag: :gitlab_main) }
        .to raise_error(ArgumentError, /allowed/)
      expect { described_class.new(dictionary: {}, allowed: main_schemas, tag: :gitlab_main) }
        .to raise_error(ArgumentError, /dictionary/)
      expect { described_class.new(dictionary:, allowed: main_schemas, tag: "") }
        .to raise_error(ArgumentError, /tag/)
    end
  end
end
