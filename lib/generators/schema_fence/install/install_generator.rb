# frozen_string_literal: true

require "rails/generators"
require "rails/generators/active_record"

module SchemaFence
  # Rails generators of schema_fence.
  module Generators
    # +rails generate schema_fence:install+ writes what an app needs to run schema_fence:
    #
    # - db/migrate/<timestamp>_install_schema_fence.rb: the tracking tables and the identity, on
    #   every database the migration runs on (+--database ci+ writes it into the migrations_paths
    #   of that database instead);
    # - config/initializers/schema_fence.rb: the configuration, with the defaults the Railtie
    #   sets, and the sidekiq-cron schedule of the schedulers;
    # - app/workers/<database>_batched_migration_scheduler_worker.rb for each database of the
    #   topology (or of +--databases main ci+), and
    #   app/workers/batched_migration_execution_worker.rb.
    class InstallGenerator < Rails::Generators::Base
      include ActiveRecord::Generators::Migration

      source_root File.expand_path("templates", __dir__)

      # The tracking-table migration is the gem's own template, kept in one place.
      MIGRATION_TEMPLATE = File.expand_path("../../../schema_fence/templates/install_schema_fence.rb", __dir__)

      class_option :database, type: :string, desc: "The database whose migrations_paths gets the migration"
      class_option :databases, type: :array, desc: "The databases to write a scheduler worker for " \
                                                   "(default: those of db/database_connections)"

      desc "Installs schema_fence: the tracking-table migration, an initializer and the Sidekiq workers"

      # @return [void]
      def create_install_migration
        migration_template "install_schema_fence.rb.tt", File.join(db_migrate_path, "install_schema_fence.rb")
      end

      # @return [void]
      def create_initializer
        template "initializer.rb.tt", "config/initializers/schema_fence.rb"
      end

      # @return [void]
      def create_workers
        databases.each do |name|
          @database_name = name
          template "scheduler_worker.rb.tt", "app/workers/#{name}_batched_migration_scheduler_worker.rb"
        end
        template "execution_worker.rb.tt", "app/workers/batched_migration_execution_worker.rb"
      end

      private

      attr_reader :database_name

      def databases
        @databases ||= Array(options[:databases]).presence || topology_databases || ["main"]
      end

      def topology_databases
        return unless SchemaFence.configuration.topology_path

        SchemaFence.topology.database_names.map(&:to_s)
      end

      # The gem's template, as a migration of this app's Rails version (Migration[7.2] on Rails 7.2):
      # a migration keeps the behaviour of the version it names.
      def install_migration_source
        source = File.read(MIGRATION_TEMPLATE)
        source.sub("ActiveRecord::Migration[6.1]", "ActiveRecord::Migration[#{migration_version}]").chomp
      end

      def migration_version
        "#{ActiveRecord::VERSION::MAJOR}.#{ActiveRecord::VERSION::MINOR}"
      end

      def scheduler_class(name)
        "#{name.camelize}BatchedMigrationSchedulerWorker"
      end
    end
  end
end
