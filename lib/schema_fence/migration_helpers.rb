# frozen_string_literal: true

module SchemaFence
  # GitLab's batched background migration DSL for ActiveRecord migrations:
  #
  #   class QueueBackfillCiBuilds < ActiveRecord::Migration[6.1]
  #     include SchemaFence::MigrationHelpers
  #     restrict_gitlab_migration gitlab_schema: :gitlab_ci
  #
  #     def up
  #       queue_batched_background_migration("BackfillCiBuilds", :ci_builds, :id, job_interval: 2.minutes)
  #     end
  #
  #     def down
  #       delete_batched_background_migration("BackfillCiBuilds", :ci_builds, :id, [])
  #     end
  #   end
  #
  # A restricted migration runs only on databases that serve its gitlab_schema (read from the
  # identity stored in the database); elsewhere it is skipped with a message and still recorded
  # in schema_migrations, as GitLab does.
  module MigrationHelpers
    # GitLab's defaults: keys per batch,
    BATCH_SIZE = 1_000
    # keys per sub-batch,
    SUB_BATCH_SIZE = 100
    # the first key,
    BATCH_MIN_VALUE = 1
    # and milliseconds between sub-batches.
    PAUSE_MS = 100

    # Adds the class-level DSL ({ClassMethods}) to a migration class that includes this module, or
    # to ActiveRecord::Migration, to which the Railtie prepends it.
    def self.included(base) = base.extend(ClassMethods)
    singleton_class.alias_method :prepended, :included

    # Class-level declarations.
    module ClassMethods
      # @param gitlab_schema [Symbol, String] the only gitlab_schema this migration may touch
      def restrict_gitlab_migration(gitlab_schema:)
        @restricted_gitlab_schema = gitlab_schema.to_sym
      end

      # @return [Symbol, nil]
      def restricted_gitlab_schema
        return @restricted_gitlab_schema if defined?(@restricted_gitlab_schema)

        superclass.respond_to?(:restricted_gitlab_schema) ? superclass.restricted_gitlab_schema : nil
      end
    end

    # Skips the whole migration on a database that does not serve its restriction.
    def exec_migration(conn, direction)
      schema = self.class.restricted_gitlab_schema
      if schema && !serves_gitlab_schema?(conn, schema)
        @connection = conn
        say "Migration skipped: #{self.class.name} is restricted to #{schema}, which this database " \
            "(#{identity_of(conn).name}, serving #{identity_of(conn).serves.join(', ')}) does not serve"
        @connection = nil
        return
      end
      super
    end

    # Queues a batched background migration tagged with the table's gitlab_schema, in this
    # migration's transaction. GitLab's arguments and defaults.
    #
    # @return [Integer] the tracking row's id
    def queue_batched_background_migration(job_class_name, batch_table_name, batch_column_name, *job_arguments,
                                           job_interval:, batch_min_value: BATCH_MIN_VALUE, batch_max_value: nil,
                                           batch_size: BATCH_SIZE, max_batch_size: nil,
                                           sub_batch_size: SUB_BATCH_SIZE, pause_ms: PAUSE_MS)
      options = [Integer(job_interval), Integer(batch_size), Integer(sub_batch_size), Integer(batch_min_value),
                 batch_max_value&.then { |v| Integer(v) }, max_batch_size&.then { |v| Integer(v) },
                 Integer(pause_ms), respond_to?(:version) && version ? version.to_s : nil]
      payload = { database: Connection.database_name(connection), job_class_name: job_class_name.to_s,
                  table_name: batch_table_name.to_s, column_name: batch_column_name.to_s, job_arguments:,
                  gitlab_schema: self.class.restricted_gitlab_schema, outcome: nil, id: nil }
      Instrumentation.instrument(:enqueue, payload) do
        outcome, id, tag = Store._queue(Connection.native(connection), SchemaFence.dictionary,
                                        [job_class_name.to_s, batch_table_name.to_s, batch_column_name.to_s,
                                         JobArguments.to_json_array(job_arguments), restriction_name, options])
        payload.merge!(outcome:, id:, gitlab_schema: tag)
        say_queued(outcome, job_class_name, batch_table_name, tag)
        id
      end
    end

    # Deletes the migration queued with this key, tag included, and its jobs.
    # @return [Integer] how many were deleted (0 or 1)
    def delete_batched_background_migration(job_class_name, table_name, column_name, job_arguments)
      Store._delete(Connection.native(connection), SchemaFence.dictionary,
                    [job_class_name.to_s, table_name.to_s, column_name.to_s,
                     JobArguments.to_json_array(Array(job_arguments)), restriction_name])
    end

    # Makes sure a queued migration is done before later migrations rely on it: finishes it
    # inline (runs the remaining batches on this database) when +finalize+ is true, and raises
    # with the command to run when it cannot. On a database that skips this (restricted)
    # migration, nothing happens.
    #
    # @raise [MigrationNotFinishedError]
    def ensure_batched_background_migration_is_finished(job_class_name:, table_name:, column_name:, job_arguments:,
                                                        finalize: true)
      key = [job_class_name.to_s, table_name.to_s, column_name.to_s,
             JobArguments.to_json_array(Array(job_arguments)), restriction_name]
      id = Store._find_id(Connection.native(connection), SchemaFence.dictionary, key)
      unless id
        raise MigrationNotFinishedError, "no batched background migration #{job_class_name} on #{table_name}.#{column_name} " \
                                         "with arguments #{job_arguments.inspect} is queued on this database: queue it first"
      end

      status = migration_status(id)
      return if %i[finished finalized].include?(status)

      status = finalize_inline(id) if finalize
      return if %i[finished finalized].include?(status)

      raise MigrationNotFinishedError, not_finished_message(job_class_name, id, status)
    end

    private

    def migration_status(id)
      Migrations.on(connection).find_by_id(id)&.status
    end

    def finalize_inline(id)
      identity = Identity.read!(connection)
      say "Finalizing batched background migration #{id} on #{identity.name}"
      # Ruby jobs run on a connection of their own (the worker's connection class for this URL),
      # not on the migration's: that one is inside the migration's transaction, where a batch
      # recorded as done could still be rolled back with the migration.
      worker = Worker.new(database: identity.name, url: Connection.url_for(ActiveRecord::Base))
      status = worker.finish(id)
      Store._set_status(Connection.native(connection), id, "finalized") if status == :finished
      migration_status(id)
    end

    def not_finished_message(job_class_name, id, status)
      database = Identity.read(connection)&.name
      "batched background migration #{job_class_name} (id #{id} on #{database}) is #{status || 'missing'}, not finished. " \
        "Finish it with: bin/rails runner 'SchemaFence::Worker.for(:#{database}).finish(#{id})' " \
        "(after fixing what failed: see SchemaFence::Migrations.on(connection).find_by_id(#{id}))"
    end

    def restriction_name
      self.class.restricted_gitlab_schema&.to_s
    end

    def identity_of(conn)
      @identities ||= {}.compare_by_identity
      @identities[conn] ||= Identity.read!(conn)
    end

    def serves_gitlab_schema?(conn, schema)
      identity_of(conn).allowed_schemas.include?(schema)
    end

    def say_queued(outcome, job_class_name, table, tag)
      case outcome
      when :already_queued
        say "Batched background migration not enqueued because it already exists: #{job_class_name} on #{table}"
      when :finished
        say "Batched background migration #{job_class_name} on #{table} (#{tag}) has nothing to migrate: " \
            "queued as finished"
      else
        say "Batched background migration #{job_class_name} on #{table} queued, tagged #{tag}"
      end
    end
  end
end
