# frozen_string_literal: true

require "pg"

RSpec.describe SchemaFence::Install, :postgres do
  include_context "with a Rails-like app"

  let(:url) { Clusters.fresh_database("install") }

  def gitlab_shaped_rows(*tables)
    PG.connect(url) do |c|
      c.exec(<<~SQL)
        CREATE TABLE batched_background_migrations (id bigserial PRIMARY KEY,
          created_at timestamptz NOT NULL DEFAULT now(), updated_at timestamptz NOT NULL DEFAULT now(),
          min_value bigint NOT NULL DEFAULT 1, max_value bigint NOT NULL, batch_size integer NOT NULL,
          sub_batch_size integer NOT NULL, "interval" smallint NOT NULL, status smallint NOT NULL DEFAULT 0,
          job_class_name text NOT NULL, batch_class_name text NOT NULL DEFAULT 'PrimaryKeyBatchingStrategy',
          table_name text NOT NULL, column_name text NOT NULL, job_arguments jsonb NOT NULL DEFAULT '[]',
          total_tuple_count bigint, pause_ms integer NOT NULL DEFAULT 100, max_batch_size integer,
          started_at timestamptz, on_hold_until timestamptz)
      SQL
      tables.each_with_index do |table, i|
        c.exec_params("INSERT INTO batched_background_migrations (max_value, batch_size, sub_batch_size, " \
                      "\"interval\", job_class_name, table_name, column_name) VALUES (10, 5, 5, 120, $1, $2, 'id')",
                      ["Job#{i}", table])
      end
    end
  end

  describe "as the install migration the app copies" do
    it "tags existing GitLab rows from their own table_name, not a blanket gitlab_main" do
      gitlab_shaped_rows("projects", "ci_builds", "gitlab_partitions_dynamic.ci_builds_101")
      app.configure(main: url, ci: url, ci_database_tasks: false)
      output = app.migrate(:main)
      expect(output).to include("3 existing migrations tagged from their table_name")
      expect(SchemaFence::Migrations.on(url).map(&:tag)).to eq(%i[gitlab_main gitlab_ci gitlab_ci])
    end

    it "fails, listing the rows it cannot tag, and changes nothing" do
      gitlab_shaped_rows("projects", "mystery_table")
      app.configure(main: url, ci: url, ci_database_tasks: false)
      expect { app.migrate(:main) }
        .to raise_error(SchemaFence::UnresolvedRowsError, /id 2 \(mystery_table\).*nothing was changed/)
      PG.connect(url) do |c|
        expect(c.exec("SELECT to_regclass('schema_fence_identity')").getvalue(0, 0)).to be_nil
        expect(c.exec("SELECT count(*) FROM information_schema.columns " \
                      "WHERE column_name = 'gitlab_schema'").getvalue(0, 0)).to eq("0")
      end
    end
  end

  describe "as a core call on a URL" do
    it "stamps a database of its own serving only itself, and is idempotent" do
      report = described_class.up(url, name: "ci", serves: ["ci"])
      expect(report.identity.to_h).to include(name: "ci", serves: ["ci"], epoch: 0)
      expect(described_class.up(url, name: "ci", serves: ["ci"]).identity).to eq(report.identity)
      expect(SchemaFence::Identity.read!(url)).to eq(report.identity)
    end

    it "refuses to install for a database this one is not, naming both" do
      described_class.up(url, name: "ci", serves: ["ci"])
      expect { described_class.up(url, name: "main", serves: ["main"]) }
        .to raise_error(SchemaFence::IdentityConflictError, /"main".*stamped as "ci"/)
    end

    it "says what to do when the identity is read before the install" do
      expect(SchemaFence::Identity.read(url)).to be_nil
      expect { SchemaFence::Identity.read!(url) }.to raise_error(SchemaFence::IdentityMissingError, /install/)
    end
  end
end
