# frozen_string_literal: true

require "json"

# `rails generate schema_fence:install` in a Rails 6.1 app (Debian's railties), then the app
# migrated and booted against real databases: main and ci split, each with its own database.
RSpec.describe "Installing into a Rails app", :postgres do
  before(:all) do
    @dir = Dir.mktmpdir("schema_fence-rails")
    @main_url = Clusters.fresh_database("rails_main")
    @ci_url = Clusters.fresh_database("rails_ci")
    @app = RailsSkeleton.new(@dir, databases: { "main" => @main_url, "ci" => @ci_url })
    FileUtils.cp_r(GitlabFixtures.path("database_connections"), File.join(@dir, "db"))
    @app.write("lib/gitlab/database/gitlab_schemas.yml", <<~YAML)
      ci_builds: :gitlab_ci
      projects: :gitlab_main
    YAML
    @app.write("app/models/application_record.rb", <<~RUBY)
      class ApplicationRecord < ActiveRecord::Base
        self.abstract_class = true
        connects_to database: { writing: :main }
      end
    RUBY
    @app.write("app/models/ci/application_record.rb", <<~RUBY)
      module Ci
        class ApplicationRecord < ActiveRecord::Base
          self.abstract_class = true
          connects_to database: { writing: :ci }
        end
      end
    RUBY
    @generate = @app.rails!("generate", "schema_fence:install")
    @migrate = @app.rails!("db:migrate")
  end

  after(:all) { FileUtils.rm_rf(@dir) }

  let(:app) { @app }

  describe "rails generate schema_fence:install" do
    it "writes the tracking-table migration with a timestamp: the gem's template, of the app's Rails version" do
      migrations = app.glob("db/migrate/*.rb")
      expect(migrations).to match([%r{\Adb/migrate/\d{14}_install_schema_fence\.rb\z}])
      template = File.read(File.expand_path("../lib/schema_fence/templates/install_schema_fence.rb", __dir__))
      expect(app.read(migrations.first))
        .to eq(template.sub("ActiveRecord::Migration[6.1]", "ActiveRecord::Migration[#{RailsSkeleton::VERSION}]"))
      expect(@generate.out).to match(%r{create +db/migrate/\d{14}_install_schema_fence\.rb})
    end

    it "writes an initializer and the Sidekiq workers: a scheduler per database and the execution worker" do
      expect(app.glob("app/workers/*.rb")).to eq(%w[app/workers/batched_migration_execution_worker.rb
                                                    app/workers/ci_batched_migration_scheduler_worker.rb
                                                    app/workers/main_batched_migration_scheduler_worker.rb])
      ci = app.read("app/workers/ci_batched_migration_scheduler_worker.rb")
      expect(ci).to include("class CiBatchedMigrationSchedulerWorker", "include SchemaFence::Sidekiq::SchedulerWorker",
                            "tracks_database :ci", 'execution_worker "BatchedMigrationExecutionWorker"')
      expect(app.read("app/workers/batched_migration_execution_worker.rb"))
        .to include("class BatchedMigrationExecutionWorker", "include SchemaFence::Sidekiq::ExecutionWorker")
      initializer = app.read("config/initializers/schema_fence.rb")
      expect(initializer).to include("SchemaFence.configure do |c|", "config.on(:startup)",
                                     "schedulers = %w[CiBatchedMigrationSchedulerWorker MainBatchedMigrationSchedulerWorker]",
                                     "Sidekiq::Cron::Job.create", "SchemaFence::Sidekiq::Clock.start(schedulers, every: 60)")
    end

    it "writes files that boot without a warning: nothing is autoloaded during initialization" do
      result = app.rails!("runner", "puts :booted")
      expect(result.out.lines.last).to eq("booted\n")
      expect(result.err).not_to match(/warn|deprecat/i)
      expect(app.read("log/development.log")).not_to match(/DEPRECATION|autoloaded/)
    end

    it "writes files that load: the workers include the modules and name their database" do
      result = app.rails!("runner", <<~RUBY)
        puts [CiBatchedMigrationSchedulerWorker.tracks_database, MainBatchedMigrationSchedulerWorker.tracks_database,
              CiBatchedMigrationSchedulerWorker.execution_worker,
              BatchedMigrationExecutionWorker.include?(SchemaFence::Sidekiq::ExecutionWorker)].inspect
      RUBY
      expect(result.out.lines.last).to eq(%(["ci", "main", "BatchedMigrationExecutionWorker", true]\n))
    end
  end

  describe "rails db:migrate" do
    it "creates the tracking tables and stamps each database's identity" do
      expect(@migrate.out).to include("schema_fence installed: main serving main (epoch 0)",
                                      "schema_fence installed: ci serving ci (epoch 0)")
      [[@main_url, "main"], [@ci_url, "ci"]].each do |url, name|
        tables = PG.connect(url) do |c|
          c.exec("SELECT to_regclass('batched_background_migrations') IS NOT NULL, " \
                 "to_regclass('batched_background_migration_jobs') IS NOT NULL").values.first
        end
        expect(tables).to eq(%w[t t])
        expect(SchemaFence::Identity.read(url).to_h).to include(name:, serves: [name], epoch: 0)
      end
    end
  end

  describe "the Railtie" do
    it "reads the dictionary and the topology from the conventional paths and configures each database " \
       "through the app's abstract class" do
      result = app.rails!("runner", <<~RUBY)
        c = SchemaFence.configuration
        puts({ dictionary: c.dictionary_paths.map { |p| p.delete_prefix(Rails.root.to_s) },
               topology: c.topology_path.delete_prefix(Rails.root.to_s),
               databases: c.databases.transform_values { |d| d[:connection_class].name },
               ci_builds: SchemaFence.dictionary.table_schema("ci_builds") }.to_json)
      RUBY
      expect(JSON.parse(result.out.lines.last))
        .to eq("dictionary" => ["/lib/gitlab/database/gitlab_schemas.yml"], "topology" => "/db/database_connections",
               "databases" => { "main" => "ApplicationRecord", "ci" => "Ci::ApplicationRecord" },
               "ci_builds" => "gitlab_ci")
    end

    it "gives every migration the DSL, and logs the enqueue to the Rails log" do
      # After the install migration, and not in the future: Rails 7.2 refuses a timestamp past tomorrow.
      migration = "db/migrate/#{(Time.now.utc + 60).strftime('%Y%m%d%H%M%S')}_create_ci_builds.rb"
      app.write(migration, <<~RUBY)
        class CreateCiBuilds < ActiveRecord::Migration[6.1]
          restrict_gitlab_migration gitlab_schema: :gitlab_ci

          def up
            execute "CREATE TABLE ci_builds (id bigint PRIMARY KEY)"
            execute "INSERT INTO ci_builds SELECT generate_series(1, 10)"
            queue_batched_background_migration("BackfillCiBuilds", :ci_builds, :id, job_interval: 120)
          end
        end
      RUBY
      migrate = app.rails!("db:migrate")
      expect(migrate.out).to include("Migration skipped: CreateCiBuilds is restricted to gitlab_ci",
                                     "Batched background migration BackfillCiBuilds on ci_builds queued, tagged gitlab_ci")
      expect(SchemaFence::Migrations.on(@ci_url).map { |m| [m.job_class_name, m.tag] })
        .to eq([["BackfillCiBuilds", :gitlab_ci]])
      expect(SchemaFence::Migrations.on(@main_url).to_a).to be_empty
      expect(app.read("log/development.log"))
        .to match(/schema_fence enqueue ci: BackfillCiBuilds on ci_builds\.id queued as migration 1, tagged gitlab_ci/)
    ensure
      FileUtils.rm_f(File.join(app.root, migration)) if migration
    end

    it "loads the rake tasks" do
      status = JSON.parse(app.rails!("schema_fence:status", env: { "FORMAT" => "json" }).out)
      expect(status["databases"].map { |d| [d["name"], d["state"], d["identity"]["name"]] })
        .to eq([%w[main owner main], %w[ci owner ci]])
      tasks = app.rails!("-T", "schema_fence").out
      expect(tasks).to include("schema_fence:status", "schema_fence:pause[id]", "schema_fence:finalize[id]",
                               "schema_fence:cutover:plan")
    end
  end

  # ci falls back to main and has no database of its own: on Rails 6.1 it has no database.yml
  # entry; on Rails 7 it may have one marked database_tasks: false, which configs_for hides.
  shared_entries = { "no ci entry" => ->(url) { { "main" => url } } }
  if ActiveRecord::VERSION::MAJOR >= 7
    shared_entries["a ci entry with database_tasks: false"] =
      ->(url) { { "main" => url, "ci" => { url:, database_tasks: false } } }
  end
  shared_entries.each do |label, entries|
    describe "into an app whose ci still shares main's database, with #{label}" do
      before(:all) do
        @lone_dir = Dir.mktmpdir("schema_fence-rails-lone")
        @lone_url = Clusters.fresh_database("rails_lone")
        @lone = RailsSkeleton.new(@lone_dir, databases: entries.call(@lone_url))
        FileUtils.cp_r(GitlabFixtures.path("database_connections"), File.join(@lone_dir, "db"))
        @lone.write("lib/gitlab/database/gitlab_schemas.yml", "ci_builds: :gitlab_ci\nprojects: :gitlab_main\n")
        @lone.rails!("generate", "schema_fence:install")
        @lone_migrate = @lone.rails!("db:migrate")
      end

      after(:all) { FileUtils.rm_rf(@lone_dir) }

      it "stamps main serving main and ci, and ci's scheduler idles on main's database instead of failing" do
        expect(@lone_migrate.out).to include("schema_fence installed: main serving main, ci (epoch 0)")
        result = @lone.rails!("runner", <<~RUBY)
          puts [CiBatchedMigrationSchedulerWorker.new.perform, SchemaFence::Worker.for(:ci).run_once.status].inspect
        RUBY
        expect(result.out.lines.last).to eq("[[], :idle]\n")
      end
    end
  end

  describe "into an app whose ci still shares main's database, without abstract classes" do
    before(:all) do
      @shared_dir = Dir.mktmpdir("schema_fence-rails-shared")
      @shared_url = Clusters.fresh_database("rails_shared")
      @shared = RailsSkeleton.new(@shared_dir, databases: { "main" => @shared_url, "ci" => @shared_url })
      FileUtils.cp_r(GitlabFixtures.path("database_connections"), File.join(@shared_dir, "db"))
      @shared.write("lib/gitlab/database/gitlab_schemas.yml", "ci_builds: :gitlab_ci\nprojects: :gitlab_main\n")
      @shared.rails!("generate", "schema_fence:install")
      @shared_migrate = @shared.rails!("db:migrate")
    end

    after(:all) { FileUtils.rm_rf(@shared_dir) }

    it "stamps the one database as main serving main and ci" do
      expect(@shared_migrate.out).to include("schema_fence installed: main serving main, ci (epoch 0)")
      expect(SchemaFence::Identity.read(@shared_url).to_h).to include(name: "main", serves: %w[main ci])
    end

    it "configures each database by the URL of its database.yml entry, and ci's worker idles" do
      result = @shared.rails!("runner", <<~RUBY)
        puts({ urls: SchemaFence.configuration.databases.transform_values { |d| d[:url] },
               ci: SchemaFence::Worker.for(:ci).run_once.status }.to_json)
      RUBY
      config = JSON.parse(result.out.lines.last)
      expect(config["urls"].keys).to eq(%w[main ci])
      expect(config["urls"].values.map { |u| PG.connect(u) { |c| c.exec("SELECT current_database()").getvalue(0, 0) } })
        .to eq([URI.parse(@shared_url).path.delete_prefix("/")] * 2)
      expect(config["ci"]).to eq("idle")
    end
  end
end

RSpec.describe "A Rails app connected through a Unix socket", :postgres do
  it "migrates, stamps and runs its worker with host: set to the socket directory" do
    cluster = Clusters.primary
    Clusters.skip_example("needs the suite's own cluster (its socket directory)") unless cluster.is_a?(SchemaFence::Cluster)
    name = URI.parse(Clusters.fresh_database("rails_socket")).path.delete_prefix("/")
    port = URI.parse(cluster.url).port
    Dir.mktmpdir("schema_fence-rails-socket") do |dir|
      app = RailsSkeleton.new(dir, databases: { "main" => { host: File.dirname(cluster.data_dir), port:, database: name,
                                                            username: "postgres" } })
      FileUtils.cp_r(GitlabFixtures.path("database_connections"), File.join(dir, "db"))
      app.write("lib/gitlab/database/gitlab_schemas.yml", "ci_builds: :gitlab_ci\nprojects: :gitlab_main\n")
      app.rails!("generate", "schema_fence:install")
      expect(app.rails!("db:migrate").out).to include("schema_fence installed: main serving main, ci (epoch 0)")
      result = app.rails!("runner", "puts [SchemaFence.configuration.databases['main'][:url], " \
                                    "SchemaFence::Worker.for(:main).run_once.status].inspect")
      socket = URI.encode_www_form_component(File.dirname(cluster.data_dir))
      expect(result.out.lines.last)
        .to eq(%(["postgresql:///#{name}?host=#{socket}&port=#{port}&user=postgres", :nothing]\n))
    end
  end
end
