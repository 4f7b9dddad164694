# frozen_string_literal: true

module SchemaFence
  # GitLab's helpers that finish a queued migration before later migrations rely on it, part of
  # {MigrationHelpers}.
  module FinalizeHelpers
    # Makes sure a queued migration is done: a finished one is marked finalized; otherwise, with
    # +finalize+, its remaining batches run here and now (on this database). A migration never
    # queued on this database is not an error (GitLab's behaviour): a warning is logged, a
    # +migration_not_found+ event published, and nothing else happens. On a database that skips
    # this (restricted) migration, nothing happens at all.
    #
    # @param skip_early_finalization_validation [Boolean] GitLab's; schema_fence does not check
    #   how long ago the migration was queued, so there is nothing to skip
    # @raise [MigrationNotFinishedError] when it is not finished afterwards, with the command to finish it
    def ensure_batched_background_migration_is_finished(job_class_name:, table_name:, column_name:, job_arguments:,
                                                        finalize: true, skip_early_finalization_validation: false)
      _ = skip_early_finalization_validation
      id = find_queued(job_class_name, table_name, column_name, job_arguments)
      return migration_not_found(job_class_name, table_name, column_name, job_arguments) unless id

      status = migration_status(id)
      return if status == :finalized
      return mark_finalized(id) if status == :finished

      status = finalize_inline(id) if finalize
      return if %i[finished finalized].include?(status)

      raise MigrationNotFinishedError, not_finished_message(job_class_name, id, status)
    end

    # Runs the remaining batches of a queued migration here and now, then marks it finalized
    # (GitLab's +finalize_batched_background_migration+).
    #
    # @raise [MigrationNotFinishedError] when no such migration is queued on this database, or it
    #   did not finish
    def finalize_batched_background_migration(job_class_name:, table_name:, column_name:, job_arguments:)
      id = find_queued(job_class_name, table_name, column_name, job_arguments)
      unless id
        raise MigrationNotFinishedError, "could not find batched background migration #{job_class_name} on " \
                                         "#{table_name}.#{column_name} with arguments #{job_arguments.inspect} on this " \
                                         "database"
      end

      status = finalize_inline(id)
      return if %i[finished finalized].include?(status)

      raise MigrationNotFinishedError, not_finished_message(job_class_name, id, status)
    end

    private

    def find_queued(job_class_name, table_name, column_name, job_arguments)
      Store.find_id(connection, job_class_name:, table_name:, column_name:, job_arguments: Array(job_arguments),
                                restriction: restriction_name)
    end

    def migration_not_found(job_class_name, table_name, column_name, job_arguments)
      payload = { database: Connection.database_name(connection), job_class_name: job_class_name.to_s,
                  table_name: table_name.to_s, column_name: column_name.to_s, job_arguments: Array(job_arguments) }
      Instrumentation.instrument(:migration_not_found, payload)
      say "Could not find batched background migration #{job_class_name} on #{table_name}.#{column_name} with " \
          "arguments #{Array(job_arguments).inspect} on this database: nothing to finish"
      nil
    end

    def migration_status(id)
      Migrations.on(connection).find_by_id(id)&.status
    end

    def mark_finalized(id)
      Store._set_status(Connection.native(connection), id, "finalized")
      nil
    end

    def finalize_inline(id)
      identity = Identity.read!(connection)
      say "Finalizing batched background migration #{id} on #{identity.name}"
      # The jobs run on a pool of their own: the migration's connection is inside its transaction,
      # where a job's commits would not be its own (the claims commit on their own connection too).
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
  end
end
