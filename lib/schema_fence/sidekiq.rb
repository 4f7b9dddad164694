# frozen_string_literal: true

require "sidekiq"
require_relative "../schema_fence"
require_relative "sidekiq/clock"

module SchemaFence
  # Sidekiq workers, as modules the app's own worker classes include:
  #
  #   class CiBatchedMigrationScheduler
  #     include SchemaFence::Sidekiq::SchedulerWorker
  #     tracks_database :ci
  #     execution_worker "BatchedMigrationExecutor"
  #   end
  #
  #   class BatchedMigrationExecutor
  #     include SchemaFence::Sidekiq::ExecutionWorker
  #   end
  #
  # The scheduler runs every minute (sidekiq-cron, see the README): it fences on the identity of
  # its database, fetches the migrations that may run and enqueues one execution per migration
  # with the epoch it saw; the execution claims one batch (refused if the epoch changed), runs it
  # and records the result.
  module Sidekiq
    # Fetches and enqueues executions for one database.
    module SchedulerWorker
      # Makes +base+ a Sidekiq worker (no retries: the next schedule fetches again).
      def self.included(base)
        base.include(::Sidekiq::Worker)
        base.sidekiq_options retry: false
        base.extend(ClassMethods)
      end

      # Class-level settings.
      module ClassMethods
        # Declares (or returns) the database this scheduler fetches for.
        # @param name [Symbol, String, nil]
        # @return [String]
        def tracks_database(name = nil)
          @tracks_database = name.to_s if name
          @tracks_database || raise(Error, "#{self.name}: declare `tracks_database :main` (or :ci, ...)")
        end

        # Declares (or returns) the name of the app's execution worker class.
        # @param name [String, nil]
        # @return [String]
        def execution_worker(name = nil)
          @execution_worker = name.to_s if name
          @execution_worker || raise(Error, "#{self.name}: declare `execution_worker \"YourExecutionWorker\"`")
        end
      end

      # @return [Array<Integer>] the migrations an execution was enqueued for
      def perform
        database = self.class.tracks_database
        ids, epoch = Worker.for(database).fetch
        executor = Object.const_get(self.class.execution_worker)
        ids.each { |id| executor.perform_async(database, id, epoch) }
        ids
      rescue MisroutedConnectionError => e
        logger.error("schema_fence: #{e.message}")
        raise
      end
    end

    # Runs one batch of one migration.
    module ExecutionWorker
      # Makes +base+ a Sidekiq worker (no retries: a failed batch is retried by the next claim).
      def self.included(base)
        base.include(::Sidekiq::Worker)
        base.sidekiq_options retry: false
      end

      # @return [Symbol] what happened (:ran, :failed, :nothing, :epoch_changed, ...)
      def perform(database, migration_id, epoch)
        outcome = Worker.for(database).run_migration_batch(migration_id, epoch)
        if outcome.error
          logger.warn("schema_fence: batch #{outcome.batch.job_id} of migration #{migration_id} on #{database} " \
                      "failed: #{outcome.error.class}: #{outcome.error.message}")
        end
        outcome.status
      rescue EpochChangedError => e
        logger.info("schema_fence: #{e.message}")
        :epoch_changed
      end
    end
  end
end
