# frozen_string_literal: true

require "json"

module SchemaFence
  # Claims, completes and fails batches for one logical database on a connection of its own
  # (native; the GVL is released around every round trip). Usually driven by {Worker}.
  class Runner
    # @param url [String] a PostgreSQL URL of the database this runner works for
    # @param database [String, Symbol] the logical database it is configured for (main, ci, ...)
    # @param lease [Numeric] seconds a claimed batch stays ours before another worker may redo it
    # @param max_attempts [Integer] attempts per batch
    # @param owner [String, nil] stored on claimed jobs; default host:pid:random
    # @param fetch_limit [Integer] migrations a fetch returns (one per table), and a claim tries
    # @param stuck_after [Numeric] seconds a job left running without a lease of ours (by GitLab's
    #   own worker) stays untouched before it is claimed again: GitLab's hour by default
    # @param statement_timeout [Numeric] seconds each bookkeeping statement may take
    # @param lock_timeout [Numeric] seconds bookkeeping may wait for a lock
    # @param job_statement_timeout [Numeric] seconds each statement of a SQL job may take (hitting
    #   it halves the batch)
    # @param walk_ahead [Boolean] while a batch runs, walk to the next batch's end on a second
    #   connection, so the next claim need not walk its keys (primary-key batching)
    # @param health [Hash] thresholds of the health indicators read before a claim ({Health::DEFAULTS})
    # @param optimizer [Hash] the batch optimizer's options ({Health::OPTIMIZER_DEFAULTS})
    def self.new(url:, database:, topology: SchemaFence.topology, lease: 300, max_attempts: 3, owner: nil,
                 fetch_limit: 8, stuck_after: 3600, statement_timeout: 30, lock_timeout: 5, job_statement_timeout: 120,
                 walk_ahead: true, health: Health::DEFAULTS, optimizer: Health::OPTIMIZER_DEFAULTS)
      settings = { lease: Float(lease), max_attempts: Integer(max_attempts), owner: owner&.to_s,
                   fetch_limit: Integer(fetch_limit), stuck_after: Float(stuck_after),
                   statement_timeout: Float(statement_timeout), lock_timeout: Float(lock_timeout),
                   job_statement_timeout: Float(job_statement_timeout), walk_ahead: walk_ahead ? true : false }
      _new(url, database.to_s, topology, settings)
        .tap { |runner| runner._set_pace(Health::DEFAULTS.merge(health), Health::OPTIMIZER_DEFAULTS.merge(optimizer)) }
    end

    # @return [Symbol] :recorded, :migration_finished, :migration_failed or :lease_lost
    def complete(batch, metrics = {})
      _complete(batch, JSON.generate(metrics))
    end

    # @param timed_out [Boolean] a statement timeout: the batch is split in two instead
    # @return [Symbol] see {#complete}
    def fail(batch, error, timed_out: false)
      _fail(batch, error.to_s, timed_out)
    end

    # Runs a SQL job's statement over the batch's sub-batches, in Rust.
    # @return [Hash] sub_batches, rows, millis
    def run_sql_batch(batch, statement)
      sub_batches, rows, millis = _run_sql_batch(batch, statement)
      { sub_batches:, rows:, millis: }
    end

    # @return [String]

    def inspect
      "#<#{self.class.name} #{database} owner=#{owner}>"
    end
  end

  # A claimed batch: the key range [min_value, max_value] of one migration, or of a cursor-batched
  # one [min_cursor, max_cursor] over cursor_columns, leased to a runner.
  class Batch
    # @return [Array] the migration's job arguments
    def job_arguments
      JSON.parse(job_arguments_json)
    end

    # Shows that +connection+ (the ActiveRecord connection the Ruby job will run on) reaches the
    # physical database this batch was claimed on: the same identity and epoch, in the same
    # cluster and database.
    #
    # @param database [String, Symbol] the worker's logical database, for the message
    # @raise [JobConnectionMismatchError] when it reaches another one
    # @raise [IdentityMissingError] when the connection reaches a database without an identity
    def check_connection!(database, connection)
      row = connection.select_rows(Runner.reach_sql, "SchemaFence reach").first
      unless row
        raise IdentityMissingError, "the connection of the Ruby job of batch #{job_id} reaches a database " \
                                    "without a schema_fence identity; the job was not run"
      end

      name, epoch, system_identifier, oid = row
      _check_reach(database.to_s, [name, Integer(epoch), Integer(system_identifier), Integer(oid)])
    end

    # @return [String]

    def inspect
      keys = if cursor_columns
               "cursor (#{cursor_columns.join(', ')}) #{min_cursor}..#{max_cursor}"
             else
               "keys #{min_value}..#{max_value}"
             end
      "#<#{self.class.name} job #{job_id} of migration #{migration_id} (#{job_class_name} on #{table_name}, " \
        "#{gitlab_schema}) #{keys} attempt #{attempts}>"
    end
  end
end
