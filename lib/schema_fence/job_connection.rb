# frozen_string_literal: true

module SchemaFence
  # The ActiveRecord connection a Ruby job runs on, for one batch: this thread's connection of
  # the database's pool, shown to reach the database the batch was claimed on before the job
  # runs. Afterwards it goes back to the pool (Sidekiq outside Rails does not do it), or, when
  # anything failed, it is discarded; a connection the thread held before the batch stays with it.
  # Other threads' connections are never touched: one failed batch must not stall the others.
  module JobConnection
    module_function

    # @param connection_class [Class] the ActiveRecord class whose pool the job uses
    # @param batch [Batch] the claimed batch
    # @param database [String] the worker's logical database, for messages
    # @yieldparam connection [ActiveRecord::ConnectionAdapters::AbstractAdapter] the job's connection
    # @yield runs the job
    # @raise [JobConnectionMismatchError] when the connection reaches another database (the job
    #   is not run)
    def with(connection_class, batch, database)
      pool = connection_class.connection_pool
      # Rails 7.2+: lease_connection (pool.connection is its deprecated name there); Rails 6.1
      # and 7.0-7.1: pool.connection, the same per-thread checkout.
      # A thread that already holds a connection of this pool (a migration running
      # ensure_batched_background_migration_is_finished inline) keeps it: the batch runs on it and
      # leaves it to its owner. Rails 7.2's migrator takes its connection from the pool on each
      # call, so releasing it would move the migration, and its advisory lock, to another one.
      borrowed = pool.active_connection?
      connection = pool.respond_to?(:lease_connection) ? pool.lease_connection : pool.connection
      clean = false
      begin
        batch.check_connection!(database, connection)
        idle_before = idle?(connection)
        result = yield(connection)
        refuse_open_transaction(batch, connection) if idle_before
        clean = true
        result
      ensure
        unless borrowed
          clean ? pool.release_connection : discard(pool, connection)
        end
      end
    end

    def idle?(connection)
      raw = connection.raw_connection
      !raw.respond_to?(:transaction_status) || raw.transaction_status == PG::PQTRANS_IDLE
    end

    # A job that ends inside a transaction it opened itself (a raw BEGIN) has committed nothing:
    # recording the batch as done would skip its keys. Discarding the connection rolls it back.
    def refuse_open_transaction(batch, connection)
      return if idle?(connection)

      raise Error, "the Ruby job #{batch.job_class_name} of batch #{batch.job_id} ended inside a transaction " \
                   "it did not commit; its writes are rolled back and the batch is recorded as failed: " \
                   "commit what it opens (or use ActiveRecord's transaction blocks)"
    end

    # Takes the connection out of the pool and closes it (a dead or dirty connection is never
    # handed to the next batch); the pool opens a new one on demand.
    def discard(pool, connection)
      pool.remove(connection)
      connection.disconnect!
    rescue StandardError
      nil
    end
  end
end
