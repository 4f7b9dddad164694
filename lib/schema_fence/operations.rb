# frozen_string_literal: true

module SchemaFence
  # Steering one migration by its status id (+main_12+, see {Status}): what the rake tasks
  # +schema_fence:pause+, +:resume+, +:retry_failed+ and +:finalize+ run. Each refuses an unknown
  # id (naming the known ones) and a stale row, and returns a sentence saying what it did.
  #
  #   SchemaFence::Operations.pause("ci_3")   # => "ci_3 (BackfillCiBuilds on ci_builds) paused"
  module Operations
    module_function

    # Stops an active migration: no batch of it is claimed until it is resumed. A batch already
    # running finishes.
    #
    # @param id [String] e.g. "main_12"
    # @return [String] what was done
    # @raise [UnknownMigrationError, StaleMigrationError, MigrationStateError]
    def pause(id, status: Status.collect)
      entry, url = live(status, id)
      expect_status!(entry, %i[active], "paused")
      changed!(entry, "paused") { Store._change_status(url, entry.row_id, "active", "paused") }
      "#{describe(entry)} paused"
    end

    # Makes a paused migration active again.
    #
    # @param id [String]
    # @return [String]
    # @raise [UnknownMigrationError, StaleMigrationError, MigrationStateError]
    def resume(id, status: Status.collect)
      entry, url = live(status, id)
      expect_status!(entry, %i[paused], "resumed")
      changed!(entry, "resumed") { Store._change_status(url, entry.row_id, "paused", "active") }
      "#{describe(entry)} resumed"
    end

    # Puts the failed batches back to pending with their attempts reset, and a failed migration
    # back to active (a paused one stays paused), in one statement that changes nothing when a
    # runner finished the migration meanwhile.
    #
    # @param id [String]
    # @return [String]
    # @raise [UnknownMigrationError, StaleMigrationError, MigrationStateError]
    def retry_failed(id, status: Status.collect)
      entry, url = live(status, id)
      if entry.batches_failed.zero? && entry.status != :failed
        raise MigrationStateError, "#{describe(entry)} has no failed batches (it is #{entry.status}): nothing to retry"
      end

      expect_status!(entry, %i[active paused failed finalizing], "retried")

      retried = nil
      changed!(entry, "retried") { retried = Store._retry_failed(url, entry.row_id, entry.status.to_s) }
      "#{describe(entry)}: #{retried[:batches]} failed batch(es) back to pending, migration #{retried[:status]}"
    end

    # Runs the migration's remaining batches here and now (on the configured connection of its
    # database), then marks it finalized.
    #
    # @param id [String]
    # @param timeout [Numeric] seconds before giving up (the batches done so far stay done)
    # @yieldparam migration [Migration] before each batch, its progress read again
    # @return [String]
    # @raise [UnknownMigrationError, StaleMigrationError, MigrationStateError]
    def finalize(id, status: Status.collect, timeout: 3600, &progress)
      entry, url = live(status, id)
      return "#{describe(entry)} is already finalized" if entry.status == :finalized

      expect_status!(entry, %i[active finalizing finished], "finalized")
      result = entry.status == :finished ? :finished : Worker.for(entry.database).finish(entry.row_id, timeout:, &progress)
      unless result == :finished
        raise MigrationStateError, "#{describe(entry)} is #{result} after finalizing, not finished: " \
                                   "#{hint(entry.id, result)}"
      end

      changed!(entry, "finalized") { Store._change_status(url, entry.row_id, "finished", "finalized") }
      "#{describe(entry)} finalized"
    end

    # Runs the conditional status change (the block); when it changed nothing, a runner or
    # another operator changed the status since it was read.
    def changed!(entry, done)
      return if yield

      raise MigrationStateError, "#{describe(entry)} was not #{done}: its status changed from #{entry.status} " \
                                 "meanwhile (a worker or another operator); nothing was changed. See rake " \
                                 "schema_fence:status"
    end

    # The entry of +id+ and its database's URL, refusing a stale row.
    def live(status, id)
      entry = status.find(id)
      if entry.stale?
        db = status.database(entry.database)
        raise StaleMigrationError,
              "#{entry.id} is a stale row: its tag #{entry.gitlab_schema} is not served by #{entry.database} any more " \
              "(identity #{db.identity.name} serving #{db.identity.serves.join(', ')}, epoch #{db.identity.epoch}). " \
              "It was left behind by the split and is never run; the live copy is on the database that serves " \
              "#{entry.gitlab_schema} (see rake schema_fence:status). rake schema_fence:cleanup lists stale rows " \
              "and deletes them with DELETE=1"
      end
      [entry, db_url(status, entry)]
    end

    def db_url(status, entry)
      status.database(entry.database).url
    end

    def expect_status!(entry, allowed, done)
      return if allowed.include?(entry.status)

      raise MigrationStateError, "#{describe(entry)} is #{entry.status}: only a migration that is " \
                                 "#{allowed.join(' or ')} can be #{done}. #{hint(entry.id, entry.status)}".strip
    end

    def hint(id, status)
      case status
      when :paused then "Resume it first: rake schema_fence:resume[#{id}]"
      when :failed then "Fix what failed (its last_error in rake schema_fence:status FORMAT=json), " \
                        "then rake schema_fence:retry_failed[#{id}]"
      else ""
      end
    end

    def describe(entry)
      "#{entry.id} (#{entry.job_class_name} on #{entry.table_name})"
    end

    private_class_method :live, :db_url, :expect_status!, :hint, :describe
  end
end
