# frozen_string_literal: true

require "English"

module SchemaFence
  # Runs batches for one logical database: fences on the identity, claims, runs the job (a SQL
  # job in Rust, or a BatchedMigrationJob on the ActiveRecord connection with the statement
  # guard on), then completes or fails the batch.
  #
  #   worker = SchemaFence::Worker.for(:ci)
  #   loop { break if worker.run_once.status == :nothing }
  class Worker
    include Finalizing

    # What one step did: status is :ran, :failed, :idle, :paused or :nothing. With :nothing from
    # {#run_once}, +reason+ says why: +:no_active_migrations+ (none this database runs is active),
    # +:running_elsewhere+ (each active one has a batch running on another worker) or +:waiting+
    # (some wait: paused, on hold, behind another migration of their table, for their interval);
    # +waiting+ maps each active migration's id (+main_12+) to why it is not running now.
    Outcome = Struct.new(:status, :batch, :completion, :error, :reason, :waiting, keyword_init: true)

    @workers = {}
    @lock = Mutex.new

    class << self
      # The worker of a configured database (see Configuration#database), one per process (a new
      # one when the database is configured again).
      def for(database)
        @lock.synchronize do
          @workers.clear if @pid != Process.pid
          @pid = Process.pid
          config = SchemaFence.configuration.databases.fetch(database.to_s) do
            raise Error, "no connection configured for database #{database}: call c.database(:#{database}, " \
                         "url: ...) in SchemaFence.configure"
          end
          cached = @workers[database.to_s]
          next cached.last if cached&.first.equal?(config)

          (@workers[database.to_s] = [config, new(database:, **config)]).last
        end
      end
    end

    attr_reader :database

    def initialize(database:, url: nil, connection_class: nil, topology: SchemaFence.topology,
                   dictionary: SchemaFence.dictionary)
      @database = database.to_s
      @connection_class = connection_class
      @url = url || Connection.url_for(connection_class)
      @topology = topology
      @dictionary = dictionary
      @guards = {}
    end

    # The native runner (its connection is reopened in a forked child).
    def runner
      @runner ||= Runner.new(url: @url, database: @database, topology: @topology, **SchemaFence.configuration.runner_options)
    end

    # Claims and runs one batch of any migration this database serves.
    # @return [Outcome]
    # @raise [MisroutedConnectionError] when the connection reached another database
    def run_once
      outcome = handle(claim(nil) { runner.claim_next })
      outcome.status == :nothing ? NothingReason.explain(outcome, @url, @database) : outcome
    end

    # Claims and runs one batch of +migration_id+, refused when the identity epoch is no longer
    # +epoch+ (the one the fetch saw).
    # @raise [EpochChangedError]
    def run_migration_batch(migration_id, epoch = nil)
      handle(claim(migration_id) { runner.claim_migration(Integer(migration_id), epoch && Integer(epoch)) })
    end

    # The scheduler's fetch: the migrations this database may run now, and the identity epoch
    # it saw (empty while idle or paused).
    # @return [Array(Array<Integer>, Integer)]
    # @raise [MisroutedConnectionError] when the connection reached another database
    def fetch
      payload = Instrumentation.fetch_payload(@database, nil)
      Instrumentation.instrument(:fetch, payload) do
        ids, epoch = runner.fetch
        payload.merge!(result: :migrations, migration_ids: ids, epoch:)
        [ids, epoch]
      end
    end

    private

    # Claims (the block) inside a fetch event.
    def claim(migration_id)
      payload = Instrumentation.fetch_payload(@database, migration_id)
      pace.before_claim(runner)
      Instrumentation.instrument(:fetch, payload) { yield.tap { |claimed| Instrumentation.claimed(payload, claimed) } }
    ensure
      pace.report(runner) # holds the claim made
    end

    def pace = (@pace ||= Health::Pace.new(@database))

    def handle(claim)
      case claim
      when Batch then run(claim)
      when :idle, :paused then Outcome.new(status: claim)
      else Outcome.new(status: :nothing)
      end
    end

    def run(batch)
      payload = Instrumentation.batch_payload(@database, batch)
      started = Process.clock_gettime(Process::CLOCK_MONOTONIC)
      Instrumentation.instrument(:batch_start, payload.dup)
      recorded = false
      begin
        metrics = perform(batch)
        completion = runner.complete(batch, metrics)
        recorded = true
        efficiency = pace.report(runner)
      rescue StandardError => e
        raise if e.is_a?(MisroutedConnectionError)

        recorded = true
        return failed(batch, e, payload, started)
      ensure
        # Interrupted (Thread#raise, Timeout, Sidekiq's shutdown): the native call cancelled its
        # query; the batch is recorded failed, so it is retried while it has attempts left.
        interrupted(batch, $ERROR_INFO) unless recorded
      end
      Instrumentation.instrument(:batch_finish, payload.merge(completion:, metrics:, duration: since(started), efficiency:))
      Outcome.new(status: :ran, batch:, completion:)
    end

    def failed(batch, error, payload, started)
      if error.is_a?(CrossDatabaseAccessError)
        Instrumentation.instrument(:guard_violation, payload.merge(error_message: error.message, exception_object: error))
      end
      timed_out = timed_out?(error)
      completion = runner.fail(batch, "#{error.class}: #{error.message}", timed_out:)
      Instrumentation.instrument(:batch_failure, payload.merge(completion:, error_class: error.class.name,
                                                               error_message: error.message, exception_object: error,
                                                               timed_out:, duration: since(started)))
      Outcome.new(status: :failed, batch:, completion:, error:)
    end

    def interrupted(batch, error)
      reason = error ? "#{error.class}: #{error.message}" : "the thread was interrupted"
      runner.fail(batch, "interrupted: #{reason}", timed_out: false)
    rescue StandardError
      nil # the lease expires and another worker takes the batch over
    end

    def since(started) = Process.clock_gettime(Process::CLOCK_MONOTONIC) - started

    def perform(batch)
      guard = guard_for(batch)
      if (statement = SqlJobs[batch.job_class_name])
        guard.check(statement)
        return runner.run_sql_batch(batch, statement)
      end

      perform_ruby(batch, guard, job_class(batch.job_class_name).new(batch:, connection_class:))
    end

    def perform_ruby(batch, guard, job)
      JobConnection.with(connection_class, batch, @database) do |connection|
        started = Process.clock_gettime(Process::CLOCK_MONOTONIC)
        GuardHook.with(guard, connection) { job.perform }
        { millis: ((Process.clock_gettime(Process::CLOCK_MONOTONIC) - started) * 1000).round }
      end
    end

    # One guard per (tag, epoch): the allowed schemas change only with the identity.
    def guard_for(batch)
      @guards[[batch.gitlab_schema, batch.epoch]] ||= begin
        kind, allowed = runner.fence
        allowed = [] unless kind == :work
        Guard.new(dictionary: @dictionary, allowed:, tag: batch.gitlab_schema)
      end
    end

    def job_class(name)
      JobClasses.find(name) ||
        raise(Error, "no job class #{JobClasses.qualified(name)} and no SQL job registered as #{name.inspect}")
    end

    # The ActiveRecord class whose pool Ruby jobs run on: the configured one, or the one of this
    # database and URL (see {WorkerRecord}).
    def connection_class
      @connection_class ||= WorkerRecord.for(@database, @url)
    end

    def timed_out?(error)
      defined?(ActiveRecord::QueryCanceled) && error.is_a?(ActiveRecord::QueryCanceled)
    end
  end
end
