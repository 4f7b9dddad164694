# frozen_string_literal: true

require "rails/railtie"

module SchemaFence
  # Wires schema_fence into a Rails app (loaded by `require "schema_fence"` when Rails is):
  #
  # - the dictionary from GitLab's conventional paths, those present of {DICTIONARY_PATHS}, and
  #   the topology from {TOPOLOGY_PATH}, unless the app set them (config/initializers/schema_fence.rb
  #   runs after this and may set them again);
  # - once the app is loaded (and again on each code reload), every database of the topology that
  #   has a database.yml entry (hidden ones included) and was not configured by the app: through
  #   the app's abstract class for it when there is one (+ApplicationRecord+ for the primary,
  #   +Ci::ApplicationRecord+ or +CiRecord+ for +ci+, ...), otherwise through the URL of its
  #   configuration; and a database without an entry through its fallback's connection;
  # - {MigrationHelpers} in every migration (prepended to ActiveRecord::Migration);
  # - the rake tasks (lib/schema_fence/tasks/*.rake) and {LogSubscriber}, which writes to the
  #   Rails logger unless {Configuration#logger} is set.
  class Railtie < Rails::Railtie
    # Dictionary sources, relative to the app's root, read when present.
    DICTIONARY_PATHS = ["db/docs", "lib/gitlab/database/gitlab_schemas.yml", "db/gitlab_schemas"].freeze

    # The database connections (topology), relative to the app's root.
    TOPOLOGY_PATH = "db/database_connections"

    initializer "schema_fence.paths" do |app|
      Railtie.configure_paths(app.root)
    end

    initializer "schema_fence.log_subscriber" do
      LogSubscriber.attach!
    end

    initializer "schema_fence.migration_helpers" do
      ActiveSupport.on_load(:active_record) { ActiveRecord::Migration.prepend(SchemaFence::MigrationHelpers) }
    end

    config.to_prepare do
      Railtie.configure_databases(Rails.env)
    end

    rake_tasks do
      Dir[File.join(__dir__, "tasks", "*.rake")].each { |file| load file }
      Railtie.stamp_after_schema_loads
    end

    # The tasks that load a schema into a database (schema.rb or structure.sql; Rails 6.1 has
    # both db:schema:load and db:structure:load, 7.x one db:schema:load for either format, and
    # db:prepare loads without invoking it), and the environment whose databases they load.
    SCHEMA_LOADS = /\Adb:(?<test>test:)?(?:schema:load|structure:load|load_schema|load_structure|prepare|setup)(?::\w+)?\z/

    @configured = []

    class << self
      # Sets the dictionary paths and the topology path from the app's conventional paths, where
      # present and not set already.
      #
      # @param root [Pathname, String] the app's root
      # @return [void]
      def configure_paths(root, configuration = SchemaFence.configuration)
        dictionary = DICTIONARY_PATHS.map { |path| File.join(root, path) }.select { |path| File.exist?(path) }
        configuration.dictionary_paths = dictionary if configuration.dictionary_paths.empty? && dictionary.any?
        topology = File.join(root, TOPOLOGY_PATH)
        configuration.topology_path = topology if configuration.topology_path.nil? && File.directory?(topology)
      end

      # Configures each database of the topology that has a Rails database configuration in +env+,
      # in database.yml's order, leaving alone the databases the app configured itself; then each
      # database that has none but falls back to one that is configured (ci before the split,
      # on Rails 6.1, which has no hidden entries): it reaches its fallback's database, whose
      # identity serves it, so its worker idles there instead of failing for want of a connection.
      #
      # @param env [String] the Rails environment
      # @return [Array<String>] the databases configured by this call
      def configure_databases(env, configuration = SchemaFence.configuration)
        return [] unless configuration.topology_path

        known = SchemaFence.topology.database_names.map(&:to_s)
        own = db_configs(env).filter_map do |db_config|
          name = db_config.name
          next unless known.include?(name)
          next unless configurable?(name, configuration)

          klass = connection_class_for(name)
          klass ? configuration.database(name, connection_class: klass) : configuration.database(name, url: url_of(db_config))
          @configured |= [name]
          name
        end
        own + configure_fallbacks(env, known, configuration)
      end

      # Every database configuration of +env+, hidden ones included (see {RailsConfigs.all}).
      def db_configs(env)
        RailsConfigs.all(env)
      end

      # After every task that loads a schema, stamps the identity of the databases it loaded (see
      # {IdentityStamp}): a loaded schema has the tracking tables but not the identity row.
      #
      # @return [void]
      def stamp_after_schema_loads
        Rake::Task.tasks.each do |task|
          match = SCHEMA_LOADS.match(task.name)
          next unless match

          task.enhance { IdentityStamp.stamp(match[:test] ? "test" : Rails.env, out: $stdout) }
        end
      end

      # The app's abstract ActiveRecord class connected to the database +name+, if it has one.
      #
      # @param name [String]
      # @return [Class, nil]
      def connection_class_for(name)
        camel = name.camelize
        ["#{camel}::ApplicationRecord", "#{camel}Record", "#{camel}ApplicationRecord", "ApplicationRecord"].each do |candidate|
          klass = candidate.safe_constantize
          next unless klass.is_a?(Class) && klass < ActiveRecord::Base && klass.abstract_class?
          return klass if klass.connection_db_config&.name == name
        rescue ActiveRecord::ConnectionNotEstablished
          next
        end
        nil
      end

      private

      def configurable?(name, configuration)
        !configuration.databases.key?(name) || @configured.include?(name)
      end

      def configure_fallbacks(env, known, configuration)
        known.filter_map do |name|
          next unless configurable?(name, configuration) && db_configs(env).none? { |c| c.name == name }

          fallback = SchemaFence.topology.database(name).fallback_database
          settings = fallback && configuration.databases[fallback.to_s]
          next unless settings

          configuration.database(name, **settings)
          @configured |= [name]
          name
        end
      end

      def url_of(db_config)
        Connection.url_for_config(db_config.configuration_hash)
      end
    end
  end
end
