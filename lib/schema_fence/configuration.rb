# frozen_string_literal: true

# See lib/schema_fence.rb.
module SchemaFence
  # Where the dictionary and the topology come from. Set once at boot:
  #
  #   SchemaFence.configure do |c|
  #     c.dictionary_paths = ["db/docs", "db/gitlab_schemas"]
  #     c.topology_path = "db/database_connections"
  #   end
  class Configuration
    attr_reader :dictionary_paths, :topology_path

    # How the workers reach each database: name => { url:, connection_class: }.
    attr_reader :databases

    # Worker settings: lease seconds, attempts per batch, the module that holds Ruby job classes,
    # and the seconds after which a job left running by GitLab's own worker (no lease) is
    # claimed again (GitLab's stuck-job timeout, an hour).
    attr_accessor :lease, :max_attempts, :job_namespace, :stuck_after

    # Timeouts of the core's own connections, in seconds: each bookkeeping statement (claim,
    # complete, fail, fetch), waiting for a lock in bookkeeping, and each statement of a SQL job.
    # The connect timeout is the connection's own (+connect_timeout+ in the URL or database.yml;
    # 10 seconds when it gives none).
    attr_accessor :statement_timeout, :lock_timeout, :job_statement_timeout

    # Whether a worker walks to its next batch's end on a second connection while a batch runs
    # (true), so that the next claim need not walk the batch's keys itself.
    attr_accessor :walk_ahead

    # Months the job transition log keeps (GitLab: 6); see {TransitionLog.maintain}.
    attr_accessor :transition_log_retain_months

    def initialize
      @dictionary_paths = []
      @topology_path = nil
      @databases = {}
      @lease = 300
      @max_attempts = 3
      @stuck_after = 3600
      @job_namespace = nil
      @statement_timeout = 30
      @lock_timeout = 5
      @job_statement_timeout = 120
      @walk_ahead = true
      @transition_log_retain_months = 6
      @health_options = Health::DEFAULTS.dup
      @optimizer_options = Health::OPTIMIZER_DEFAULTS.dup
      @health_indicators = []
      @mutex = Mutex.new
    end

    # The worker settings, as {Runner.new} takes them.
    # @return [Hash]
    def runner_options
      { lease:, max_attempts:, stuck_after:, statement_timeout:, lock_timeout:, job_statement_timeout:,
        walk_ahead:, health: health_options, optimizer: optimizer_options }
    end

    # The thresholds of the health indicators ({Health::DEFAULTS}) and the batch optimizer's
    # options ({Health::OPTIMIZER_DEFAULTS}); the indicators the application added.
    attr_reader :health_options, :optimizer_options, :health_indicators

    # Changes health thresholds, e.g. +c.health(max_transaction_age: 1800, autovacuum: false)+.
    def health(**options)
      unknown = options.keys - Health::DEFAULTS.keys
      raise ArgumentError, "unknown health option #{unknown.join(', ')}; known: #{Health::DEFAULTS.keys.join(', ')}" \
        if unknown.any?

      @health_options = @health_options.merge(options)
    end

    # Changes the batch optimizer, e.g. +c.optimizer(enabled: false)+.
    def optimizer(**options)
      unknown = options.keys - Health::OPTIMIZER_DEFAULTS.keys
      if unknown.any?
        raise ArgumentError, "unknown optimizer option #{unknown.join(', ')}; " \
                             "known: #{Health::OPTIMIZER_DEFAULTS.keys.join(', ')}"
      end

      @optimizer_options = @optimizer_options.merge(options)
    end

    # Adds an indicator: +callable.call(database:)+ (or the block) returns nil to go on, a reason
    # (String) to stop.
    def health_indicator(name, callable = nil, &block)
      callable ||= block
      raise ArgumentError, "health_indicator #{name}: give a callable or a block" unless callable.respond_to?(:call)

      @health_indicators << Health::Indicator.new(name.to_sym, callable)
    end

    # Adds a Prometheus indicator (see {Health::PrometheusIndicator}).
    def prometheus_indicator(name, url:, query:, slo:, alert: :above, timeout: 5)
      @health_indicators << Health::PrometheusIndicator.new(name.to_sym, url:, query:, slo:, alert:, timeout:)
    end

    # Declares how workers reach a database: a PostgreSQL URL, an ActiveRecord class connected
    # to it (jobs run on its connection), or both (the URL is then derived when missing).
    #
    # @param name [String, Symbol] the logical database (main, ci, ...)
    def database(name, url: nil, connection_class: nil)
      raise ArgumentError, "database #{name}: give url: or connection_class:" unless url || connection_class

      @databases[name.to_s] = { url:, connection_class: }.freeze
    end

    def dictionary_paths=(paths)
      @mutex.synchronize { @dictionary = nil }
      @dictionary_paths = Array(paths)
    end

    def topology_path=(path)
      @mutex.synchronize { @topology = nil }
      @topology_path = path
    end

    # Where {LogSubscriber} writes one line per event; nil (the default) means the Rails logger.
    # @return [Logger, nil]
    attr_reader :logger

    # Sets the logger of {LogSubscriber} and attaches it (once).
    # @param logger [Logger, nil]
    def logger=(logger)
      @logger = logger
      LogSubscriber.attach! if logger
    end

    # An already loaded dictionary (instead of paths).
    attr_writer :dictionary

    # An already loaded topology (instead of a path).
    attr_writer :topology

    # @return [Dictionary]
    def dictionary
      @mutex.synchronize do
        @dictionary ||= begin
          raise Error, "SchemaFence has no dictionary: set dictionary_paths in SchemaFence.configure" if dictionary_paths.empty?

          Dictionary.load(*dictionary_paths)
        end
      end
    end

    # @return [Topology]
    def topology
      @mutex.synchronize do
        @topology ||= begin
          raise Error, "SchemaFence has no topology: set topology_path in SchemaFence.configure" unless topology_path

          Topology.load(topology_path)
        end
      end
    end
  end

  # The process-wide configuration.
  class << self
    # @yieldparam config [Configuration]
    def configure
      yield configuration
      configuration
    end

    # @return [Configuration]
    def configuration
      @configuration ||= Configuration.new
    end

    # @return [Dictionary] the configured dictionary (see {Configuration#dictionary})
    def dictionary
      configuration.dictionary
    end

    # @return [Topology] the configured topology (see {Configuration#topology})
    def topology
      configuration.topology
    end
  end
end
