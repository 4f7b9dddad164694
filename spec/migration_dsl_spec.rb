# frozen_string_literal: true

require "pg"

RSpec.describe "the migration DSL on real PostgreSQL", :postgres do
  include_context "with a Rails-like app"

  def create_tables
    app.migration("create_tables", <<~RUBY)
      def up
        execute "CREATE TABLE ci_builds (id bigint PRIMARY KEY, done int NOT NULL DEFAULT 0)"
        execute "INSERT INTO ci_builds (id) SELECT generate_series(1, 3000)"
        execute "CREATE TABLE projects (id bigint PRIMARY KEY)"
        execute "INSERT INTO projects SELECT generate_series(1, 500)"
        execute "CREATE TABLE loose_foreign_keys_deleted_records (id bigint PRIMARY KEY)"
      end
    RUBY
  end

  def queue_all
    app.migration("queue_backfill_ci_builds", <<~RUBY, restrict: :gitlab_ci)
      def up
        queue_batched_background_migration("BackfillCiBuilds", :ci_builds, :id, job_interval: 120)
      end
    RUBY
    app.migration("queue_backfill_projects", <<~RUBY, restrict: :gitlab_main)
      def up
        queue_batched_background_migration("BackfillProjects", :projects, :id, "x", 1, job_interval: 60,
                                           batch_size: 200, sub_batch_size: 50)
      end
    RUBY
    app.migration("queue_prune_lfk", <<~RUBY, restrict: :gitlab_shared)
      def up
        queue_batched_background_migration("PruneLooseForeignKeys", :loose_foreign_keys_deleted_records, :id,
                                           job_interval: 120)
      end
    RUBY
  end

  def tags(url)
    app.rows(url).to_h { |m| [m.job_class_name, m.tag] }
  end

  describe "with ci sharing main's database (database_tasks: false)" do
    it "stamps main serving main and ci, and queues every migration there with its own tag" do
      url = Clusters.fresh_database("dsl_shared")
      app.configure(main: url, ci: url, ci_database_tasks: false)
      create_tables
      queue_all
      output = app.migrate(:main)

      expect(SchemaFence::Identity.read(url).to_h).to include(name: "main", serves: %w[main ci], epoch: 0)
      expect(tags(url)).to eq("BackfillCiBuilds" => :gitlab_ci, "BackfillProjects" => :gitlab_main,
                              "PruneLooseForeignKeys" => :gitlab_shared)
      expect(output).to include("queued, tagged gitlab_ci")
      projects = app.rows(url).find { |m| m.job_class_name == "BackfillProjects" }
      expect(projects.to_h).to include(job_arguments: ["x", 1], batch_size: 200, sub_batch_size: 50,
                                       interval: 120, min_value: 1, max_value: 500, status: :active,
                                       progress: 0.0, stale: false)
    end
  end

  describe "with main and ci on two clusters" do
    let(:main_url) { Clusters.fresh_database("dsl_main", on: :main) }
    let(:ci_url) { Clusters.fresh_database("dsl_ci", on: :ci) }

    before do
      app.configure(main: main_url, ci: ci_url)
      create_tables
      queue_all
    end

    it "queues each migration on the database that owns it, and the shared one on both" do
      main_output = app.migrate(:main)
      ci_output = app.migrate(:ci)

      expect(SchemaFence::Identity.read(main_url).to_h).to include(name: "main", serves: %w[main])
      expect(SchemaFence::Identity.read(ci_url).to_h).to include(name: "ci", serves: %w[ci])
      expect(tags(main_url)).to eq("BackfillProjects" => :gitlab_main, "PruneLooseForeignKeys" => :gitlab_shared)
      expect(tags(ci_url)).to eq("BackfillCiBuilds" => :gitlab_ci, "PruneLooseForeignKeys" => :gitlab_shared)
      expect(main_output).to match(/Migration skipped: QueueBackfillCiBuilds is restricted to gitlab_ci/)
      expect(ci_output).to match(/Migration skipped: QueueBackfillProjects is restricted to gitlab_main/)
    end

    it "records a skipped migration in schema_migrations all the same" do
      app.migrate(:main)
      app.migrate(:ci)
      expect(app.versions(main_url)).to eq(app.versions(ci_url))
      expect(app.versions(main_url).size).to eq(5)
    end

    it "marks rows as stale once their database no longer serves the tag" do
      app.migrate(:main)
      Batches.stamp!(main_url, "name = 'ci', serves = '{ci}'")
      stale = SchemaFence::Migrations.on(main_url).stale.map(&:job_class_name)
      expect(stale).to eq(["BackfillProjects"])
    end
  end

  describe "the rules of tagging" do
    let(:url) { Clusters.fresh_database("dsl_rules") }

    before do
      app.configure(main: url, ci: url, ci_database_tasks: false)
      create_tables
      app.migrate(:main)
    end

    def queue_in_migration(restrict, call)
      app.migration("queue_it", "def up\n  #{call}\nend", restrict:)
      app.migrate(:main)
    end

    it "refuses a migration without restrict_gitlab_migration" do
      expect { queue_in_migration(nil, 'queue_batched_background_migration("A", :ci_builds, :id, job_interval: 60)') }
        .to raise_error(SchemaFence::MissingSchemaRestrictionError, /ci_builds.*restrict_gitlab_migration/)
    end

    it "refuses an unknown table" do
      expect { queue_in_migration(:gitlab_ci, 'queue_batched_background_migration("A", :nope, :id, job_interval: 60)') }
        .to raise_error(SchemaFence::UnknownTableError, /"nope"/)
    end

    it "refuses a gitlab_internal table" do
      expect do
        queue_in_migration(:gitlab_main,
                           'queue_batched_background_migration("A", :schema_migrations, :version, job_interval: 60)')
      end.to raise_error(SchemaFence::InternalSchemaError, /schema_migrations/)
    end

    it "refuses a table of another gitlab_schema, naming the table and both schemas" do
      expect { queue_in_migration(:gitlab_main, 'queue_batched_background_migration("A", :ci_builds, :id, job_interval: 60)') }
        .to raise_error(SchemaFence::SchemaMismatchError, /"ci_builds" is gitlab_ci.*restricted to gitlab_main/)
    end

    it "takes a gitlab_shared table only when restricted to gitlab_shared" do
      call = 'queue_batched_background_migration("A", :loose_foreign_keys_deleted_records, :id, job_interval: 60)'
      expect { queue_in_migration(:gitlab_main, call) }
        .to raise_error(SchemaFence::SchemaMismatchError, /restrict the migration to gitlab_shared/)
    end

    it "leaves no row and no schema_migrations entry when the migration raises after queueing" do
      versions = app.versions(url)
      expect do
        queue_in_migration(:gitlab_ci, <<~RUBY)
          queue_batched_background_migration("A", :ci_builds, :id, job_interval: 60)
          raise "boom after queueing"
        RUBY
      end.to raise_error(StandardError, /boom after queueing/)
      expect(app.rows(url)).to be_empty
      expect(app.versions(url)).to eq(versions)
    end

    it "keeps one row when the same migration is queued twice" do
      queue_in_migration(:gitlab_ci, <<~RUBY)
        queue_batched_background_migration("A", :ci_builds, :id, job_interval: 60)
        queue_batched_background_migration("A", :ci_builds, :id, job_interval: 60)
      RUBY
      expect(app.rows(url).size).to eq(1)
    end

    it "queues an empty table as already finished" do
      queue_in_migration(:gitlab_shared,
                         'queue_batched_background_migration("A", :loose_foreign_keys_deleted_records, :id, job_interval: 60)')
      expect(app.rows(url).first.to_h).to include(status: :finished, progress: 1.0)
    end

    it "deletes a queued migration by its key, tag included" do
      queue_in_migration(:gitlab_ci, <<~RUBY)
        queue_batched_background_migration("A", :ci_builds, :id, "arg", job_interval: 60)
        raise "not deleted" unless delete_batched_background_migration("A", :ci_builds, :id, ["arg"]) == 1
      RUBY
      expect(app.rows(url)).to be_empty
    end
  end

  describe "bad input" do
    let(:url) { Clusters.fresh_database("dsl_bad") }

    before do
      app.configure(main: url, ci: url, ci_database_tasks: false)
      create_tables
      app.migration("create_hostile_tables", <<~RUBY)
        def up
          execute 'CREATE TABLE "Weird ""Table""; DROP TABLE projects; --" ("Odd ""col""; x" bigint PRIMARY KEY)'
          execute 'INSERT INTO "Weird ""Table""; DROP TABLE projects; --" SELECT generate_series(5, 9)'
          execute 'CREATE TABLE "Upper_Case_Builds" ("ID" bigint PRIMARY KEY)'
          execute 'INSERT INTO "Upper_Case_Builds" SELECT generate_series(1, 42)'
        end
      RUBY
      app.migrate(:main)
    end

    # Each attempt is a migration of its own, as an engineer would write the next try; a failed
    # attempt is removed, as they would.
    def queue(restrict, call)
      version = app.migration("queue_bad_#{@attempt = (@attempt || 0) + 1}", "def up\n  #{call}\nend", restrict:)
      app.migrate(:main)
    rescue StandardError
      FileUtils.rm(Dir[File.join(app.migrate_dir, "#{version}_*.rb")])
      raise
    end

    def untouched!
      expect(app.rows(url)).to be_empty
      expect(PG.connect(url) { |c| c.exec("SELECT count(*) FROM projects").getvalue(0, 0) }).to eq("500")
    end

    it "quotes names with quotes, semicolons and spaces, and reads their max_value" do
      queue(:gitlab_main, <<~'RUBY')
        queue_batched_background_migration("A", 'Weird "Table"; DROP TABLE projects; --', 'Odd "col"; x', job_interval: 60)
      RUBY
      row = app.rows(url).first
      expect([row.table_name, row.column_name, row.min_value, row.max_value])
        .to eq(['Weird "Table"; DROP TABLE projects; --', 'Odd "col"; x', 1, 9])
      expect(PG.connect(url) { |c| c.exec("SELECT count(*) FROM projects").getvalue(0, 0) }).to eq("500")
    end

    it "keeps upper case names as they are" do
      queue(:gitlab_ci, 'queue_batched_background_migration("A", "Upper_Case_Builds", "ID", job_interval: 60)')
      expect(app.rows(url).first.to_h).to include(table_name: "Upper_Case_Builds", column_name: "ID", max_value: 42)
    end

    it "refuses a column name PostgreSQL would truncate" do
      expect { queue(:gitlab_ci, "queue_batched_background_migration('A', :ci_builds, '#{'c' * 64}', job_interval: 60)") }
        .to raise_error(SchemaFence::InvalidIdentifierError, /64 bytes long/)
      untouched!
    end

    it "refuses a table name PostgreSQL would truncate" do
      expect { queue(:gitlab_main, "queue_batched_background_migration('A', '#{'t' * 64}', :id, job_interval: 60)") }
        .to raise_error(SchemaFence::InvalidIdentifierError, /table name/)
      untouched!
    end

    it "refuses job arguments that are not JSON" do
      expect { queue(:gitlab_ci, 'queue_batched_background_migration("A", :ci_builds, :id, Object.new, job_interval: 60)') }
        .to raise_error(SchemaFence::InvalidJobArgumentsError, /job_arguments\[0\].*Object/)
      expect { queue(:gitlab_ci, 'queue_batched_background_migration("A", :ci_builds, :id, 0.0 / 0, job_interval: 60)') }
        .to raise_error(SchemaFence::InvalidJobArgumentsError, /finite/)
      untouched!
    end

    it "refuses job arguments nested 10,000 deep with a clear error, not a SystemStackError" do
      code = "deep = 10_000.times.reduce(1) { |inner, _| [inner] }; " \
             'queue_batched_background_migration("A", :ci_builds, :id, deep, job_interval: 60)'
      expect { queue(:gitlab_ci, code) }
        .to raise_error(SchemaFence::InvalidJobArgumentsError, /nest deeper than 32 levels/)
      untouched!
    end

    it "refuses a zero or negative batch size" do
      expect { queue(:gitlab_ci, 'queue_batched_background_migration("A", :ci_builds, :id, job_interval: 60, batch_size: 0)') }
        .to raise_error(SchemaFence::InvalidArgumentError, /batch_size.*got 0/)
      expect do
        queue(:gitlab_ci, 'queue_batched_background_migration("A", :ci_builds, :id, job_interval: 60, sub_batch_size: -1)')
      end.to raise_error(SchemaFence::InvalidArgumentError, /sub_batch_size.*got -1/)
      untouched!
    end

    it "refuses batch_min_value above batch_max_value" do
      expect do
        queue(:gitlab_ci, 'queue_batched_background_migration("A", :ci_builds, :id, job_interval: 60, ' \
                          "batch_min_value: 100, batch_max_value: 10)")
      end.to raise_error(SchemaFence::InvalidArgumentError, /batch_min_value: 100 is above batch_max_value 10/)
      untouched!
    end
  end
end
