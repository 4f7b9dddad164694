# frozen_string_literal: true

require "active_record"
require "stringio"

# A Rails-like app in a temporary directory: database configurations for main and ci, a
# db/migrate directory, and the real ActiveRecord MigrationContext to run it.
class RailsApp
  TEMPLATE = File.expand_path("../../lib/schema_fence/templates/install_schema_fence.rb", __dir__)

  DICTIONARY = <<~YAML.freeze
    ci_builds: :gitlab_ci
    projects: :gitlab_main
    loose_foreign_keys_deleted_records: :gitlab_shared
    schema_migrations: :gitlab_internal
    'Weird "Table"; DROP TABLE projects; --': :gitlab_main
    Upper_Case_Builds: :gitlab_ci
    #{'t' * 64}: :gitlab_main
  YAML

  attr_reader :root, :migrate_dir

  def initialize(root)
    @root = root
    @migrate_dir = File.join(root, "db", "migrate")
    FileUtils.mkdir_p(@migrate_dir)
    File.write(File.join(root, "gitlab_schemas.yml"), DICTIONARY)
    FileUtils.cp(TEMPLATE, File.join(@migrate_dir, "20260101000001_install_schema_fence.rb"))
    @version = 20_260_101_000_001
    SchemaFence.configure do |c|
      c.dictionary_paths = [File.join(root, "gitlab_schemas.yml")]
      c.topology_path = GitlabFixtures.path("database_connections")
    end
  end

  # Database configurations as config/database.yml would give them.
  def configure(main:, ci:, ci_database_tasks: true)
    ActiveRecord::Base.configurations = {
      "default_env" => {
        "main" => { "adapter" => "postgresql", "url" => main },
        "ci" => { "adapter" => "postgresql", "url" => ci, "database_tasks" => ci_database_tasks }
      }
    }
  end

  # Writes db/migrate/<version>_<name>.rb; the body goes inside the class.
  def migration(name, body, restrict: nil)
    @version += 1
    class_name = name.split("_").map(&:capitalize).join
    restriction = restrict ? "  restrict_gitlab_migration gitlab_schema: :#{restrict}\n" : ""
    File.write(File.join(migrate_dir, "#{@version}_#{name}.rb"), <<~RUBY)
      class #{class_name} < ActiveRecord::Migration[6.1]
        include SchemaFence::MigrationHelpers
      #{restriction}
      #{body}
      end
    RUBY
    @version
  end

  # Runs every pending migration on the named database; returns what the migrations said.
  def migrate(database)
    ActiveRecord::Base.establish_connection(database.to_sym)
    out = StringIO.new
    previous = $stdout
    $stdout = out
    migration_context.migrate
    out.string
  rescue StandardError => e
    # ActiveRecord wraps what a migration raised in "An error has occurred, ... canceled"; specs
    # look at the original.
    raise e.cause || e
  ensure
    $stdout = previous
    disconnect_all
    forget_migration_classes
  end

  # Every pool of the process, each on its own: a pool of an earlier example's cluster, stopped
  # since, must not keep the others connected.
  def disconnect_all
    ActiveRecord::Base.connection_handler.connection_pool_list.each do |pool|
      pool.disconnect!
    rescue ActiveRecord::ActiveRecordError, PG::Error
      nil
    end
  end

  def versions(url)
    PG.connect(url) { |c| c.exec("SELECT version FROM schema_migrations ORDER BY 1").values.flatten }
  end

  def rows(url)
    SchemaFence::Migrations.on(url).to_a
  end

  private

  # Rails 7.1+ keeps the schema_migrations table per pool (MigrationContext.new(dir) takes the
  # pool's); Rails 6.1 and 7.0 want the ActiveRecord::SchemaMigration class.
  def migration_context
    if ActiveRecord::VERSION::STRING >= "7.1"
      ActiveRecord::MigrationContext.new(migrate_dir)
    else
      ActiveRecord::MigrationContext.new(migrate_dir, ActiveRecord::SchemaMigration)
    end
  end

  # Each run loads the migration files again; drop the classes so a second database gets fresh ones.
  def forget_migration_classes
    Dir[File.join(migrate_dir, "*.rb")].each do |file|
      const = File.basename(file, ".rb").sub(/\A\d+_/, "").split("_").map(&:capitalize).join
      Object.send(:remove_const, const) if Object.const_defined?(const, false)
      $LOADED_FEATURES.delete(File.expand_path(file))
    end
  end
end

# A RailsApp in a temporary directory for each example, as `app`.
RSpec.shared_context "with a Rails-like app" do
  around do |example|
    Dir.mktmpdir("schema_fence-app") do |dir|
      @app = RailsApp.new(dir)
      example.run
    end
  end

  let(:app) { @app }
end
