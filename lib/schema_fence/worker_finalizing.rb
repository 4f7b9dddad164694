# frozen_string_literal: true

module SchemaFence
  class Worker
    # Finalize's path of a {Worker}: the remaining batches here and now, holds ignored.
    module Finalizing
      # Runs the migration's remaining batches here and now (finalize), yielding the migration
      # ({Migration}, its progress read again) before each batch.
      # @return [Symbol] the final status
      def finish(migration_id, timeout: 3600)
        deadline = Process.clock_gettime(Process::CLOCK_MONOTONIC) + timeout
        loop do
          migration = Migrations.on(@url).find_by_id(migration_id)
          return migration&.status if migration.nil? || %i[finished finalized failed paused].include?(migration.status)

          raise MigrationNotFinishedError, not_runnable_message(migration) unless migration.runnable?
          return migration.status if Process.clock_gettime(Process::CLOCK_MONOTONIC) > deadline

          yield migration if block_given?
          outcome = finalize_batch(migration_id)
          sleep 0.05 if outcome.status == :nothing # another worker holds a batch; wait for it
        end
      end

      private

      # One batch of a migration being finalized: a hold (on_hold_until) does not stop it.
      def finalize_batch(migration_id)
        handle(claim(migration_id) { runner.claim_to_finalize(Integer(migration_id)) })
      end

      def not_runnable_message(migration)
        "batched background migration #{migration.id} (#{migration.job_class_name} on #{migration.table_name}) " \
          "cannot be run here: #{migration.not_runnable}"
      end
    end
  end
end
