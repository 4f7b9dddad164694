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
  # with GitLab's options (+batch_class_name:+, +gitlab_schema:+, +batch_min_value:+, ...) and
  # its finalize helpers ({FinalizeHelpers}).
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
    # GitLab's default batching strategy.
    BATCH_CLASS_NAME = "PrimaryKeyBatchingStrategy"

    # Adds the class-level DSL ({ClassMethods}) to a migration class that includes this module, or
    # to ActiveRecord::Migration, to which the Railtie prepends it.
    def self.included(base)
      base.extend(ClassMethods)
      base.include(FinalizeHelpers)
    end
    singleton_class.alias_method :prepended, :included

    # Class-level declarations.
    module ClassMethods
      # @param gitlab_schema [Symbol, String] the only gitlab_schema this migration may touch
      def restrict_gitlab_migration(gitlab_schema:)
        @restricted_gitlab_schema = gitlab_schema.to_sym
      end

      # GitLab's +milestone '17.6'+ of a migration class: recorded, for GitLab's own checks.
      # @param value [String, nil]
      # @return [String, nil]
      def milestone(value = nil)
        @milestone = value.to_s if value
        return @milestone if defined?(@milestone)

        superclass.respond_to?(:milestone) ? superclass.milestone : nil
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
    # migration's transaction. GitLab's arguments and defaults: +job_interval+ is raised to
    # GitLab's 2-minute minimum (2 minutes when omitted); +batch_class_name+ is
    # PrimaryKeyBatchingStrategy or LooseIndexScanBatchingStrategy; an explicit +gitlab_schema+
    # must be the tag the restriction and the table give; the job class, when it is a
    # BatchedMigrationJob, must take as many arguments as given.
    #
    # @return [Integer] the tracking row's id
    def queue_batched_background_migration(job_class_name, batch_table_name, batch_column_name, *job_arguments,
                                           job_interval: nil, batch_min_value: BATCH_MIN_VALUE, batch_max_value: nil,
                                           batch_class_name: BATCH_CLASS_NAME, batch_size: BATCH_SIZE,
                                           max_batch_size: nil, sub_batch_size: SUB_BATCH_SIZE, pause_ms: PAUSE_MS,
                                           gitlab_schema: nil)
      cursor_columns = JobClasses.check_queueable!(job_class_name.to_s, job_arguments)
      options = { job_interval: job_interval&.then { |v| Integer(v) }, batch_size: Integer(batch_size),
                  sub_batch_size: Integer(sub_batch_size),
                  max_batch_size: max_batch_size&.then { |v| Integer(v) }, pause_ms: Integer(pause_ms),
                  queued_migration_version: queued_version, batch_class_name: batch_class_name&.to_s,
                  gitlab_schema: gitlab_schema&.to_s, gitlab_interval: true,
                  **key_range(cursor_columns, batch_min_value, batch_max_value) }
      payload = { database: Connection.database_name(connection), job_class_name: job_class_name.to_s,
                  table_name: batch_table_name.to_s, column_name: batch_column_name.to_s, job_arguments:,
                  gitlab_schema: self.class.restricted_gitlab_schema, outcome: nil, id: nil }
      Instrumentation.instrument(:enqueue, payload) do
        queued = Store.queue(connection, job_class_name:, table_name: batch_table_name, column_name: batch_column_name,
                                         job_arguments:, restriction: restriction_name, **options)
        outcome, id, tag = queued.to_a
        payload.merge!(outcome:, id:, gitlab_schema: tag)
        say_queued(outcome, job_class_name, batch_table_name, tag)
        id
      end
    end

    # Deletes the migration queued with this key, tag included, and its jobs.
    # @return [Integer] how many were deleted (0 or 1)
    def delete_batched_background_migration(job_class_name, table_name, column_name, job_arguments)
      Store.delete(connection, job_class_name:, table_name:, column_name:, job_arguments: Array(job_arguments),
                               restriction: restriction_name)
    end

    private

    # GitLab's +batch_min_value+/+batch_max_value+: integers, or for a cursor-batched job (its
    # class declares +cursor+) arrays of keys, the first and last key in keyset order when omitted.
    def key_range(cursor_columns, min, max)
      return { batch_min_value: Integer(min), batch_max_value: max&.then { |v| Integer(v) } } unless cursor_columns

      { cursor_columns:, min_cursor: cursor_keys(:batch_min_value, min, cursor_columns),
        max_cursor: cursor_keys(:batch_max_value, max, cursor_columns) }
    end

    def cursor_keys(option, value, columns)
      return value.map { |v| Integer(v) } if value.is_a?(Array)
      return if value.nil? || (option == :batch_min_value && value == BATCH_MIN_VALUE)

      raise InvalidArgumentError, "#{option}: #{value.inspect} given for a job batched by cursor " \
                                  "(#{columns.join(', ')}): give an array of #{columns.size} keys"
    end

    # The migration's version, as GitLab stores it in queued_migration_version.
    def queued_version
      respond_to?(:version) && version ? version.to_s : nil
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
