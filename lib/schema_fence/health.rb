# frozen_string_literal: true

require_relative "health/holds"
require_relative "health/prometheus_indicator"

module SchemaFence
  # Throttling on database health (docs/architecture.md section 8). Before every claim the core reads the
  # built-in indicators on the worker's connection; the application's own indicators (a callable,
  # a Prometheus query) are evaluated here and handed to the core as one stop signal. A stop
  # puts the migration on hold (+on_hold_until+) with the reason recorded.
  #
  #   SchemaFence.configure do |c|
  #     c.health(max_replication_lag_bytes: 64 * 1024**2, max_transaction_age: 1800)
  #     c.health_indicator(:deploys) { |database:| "a deploy is running" if Deploy.running? }
  #     c.prometheus_indicator(:patroni_apdex, url: "http://prometheus:9090",
  #                            query: { main: "...", ci: "..." }, slo: 0.99)
  #   end
  module Health
    # The thresholds and their defaults: GitLab's where GitLab has one (the hold of 10 minutes,
    # the archive backlog of 42 segments, the load balancer's 8 MiB and 60 s of replica lag).
    # Seconds for durations; nil turns an indicator off.
    DEFAULTS = {
      enabled: true, cache: 5, hold_for: 600, autovacuum: true,
      max_replication_lag_bytes: 8 * 1024 * 1024, max_replication_lag: 60, max_wal_receiver_backlog_bytes: 8 * 1024 * 1024,
      max_wal_rate_bytes: 100 * 1024 * 1024, max_archive_backlog: 42, max_transaction_age: 3600
    }.freeze

    # The batch optimizer's options: GitLab's bounds of the batch size.
    OPTIMIZER_DEFAULTS = { enabled: true, min_batch_size: 1_000, max_batch_size: 2_000_000 }.freeze

    # An indicator the application added: +call(database:)+ returns nil or false to go on, a
    # String (the reason) or true to stop.
    Indicator = Struct.new(:name, :callable) do
      # @return [String, nil] the reason to stop
      def stop_reason(database)
        verdict = callable.call(database:)
        return unless verdict

        verdict.is_a?(String) ? verdict : "#{name} says stop"
      end
    end

    # Feeds one worker's runner the application's signal and reports what the core decided.
    class Pace
      def initialize(database, configuration = SchemaFence.configuration)
        @database = database
        @configuration = configuration
        @checked_at = nil
      end

      # Before a claim: the application's indicators, at most once per cache period.
      def before_claim(runner)
        indicators = @configuration.health_indicators
        return if indicators.empty?

        now = Process.clock_gettime(Process::CLOCK_MONOTONIC)
        return if @checked_at && now - @checked_at < @configuration.health_options[:cache].to_f

        @checked_at = now
        runner._set_external_signal(signal(indicators))
      end

      # After a claim or a completion: an event per hold and per batch size change.
      # @return [Float, nil] the optimizer's smoothed efficiency, when it measured one
      def report(runner)
        efficiency = nil
        runner._take_decisions.each do |decision|
          case decision[:kind]
          when :held then held(decision)
          when :optimized then efficiency = optimized(decision)
          when :optimizer_failed then Instrumentation.instrument(:optimizer_failure, decision.merge(database: @database))
          end
        end
        efficiency
      end

      private

      # The first application indicator saying stop, as [name, reason]; an indicator that raises
      # counts as unknown and does not stop (GitLab's Unknown signal).
      def signal(indicators)
        indicators.each do |indicator|
          reason = begin
            indicator.stop_reason(@database)
          rescue StandardError
            nil
          end
          return [indicator.name.to_s, reason] if reason
        end
        nil
      end

      def held(decision)
        Instrumentation.instrument(:migration_held, database: @database, migration_id: decision[:migration_id],
                                                    table_name: decision[:table_name], indicator: decision[:indicator],
                                                    reason: decision[:reason],
                                                    on_hold_until: Time.at(decision[:on_hold_until]))
      end

      def optimized(decision)
        if decision[:from] != decision[:to]
          Instrumentation.instrument(:batch_size_change, database: @database, migration_id: decision[:migration_id],
                                                         job_id: decision[:job_id], efficiency: decision[:efficiency],
                                                         from: decision[:from], to: decision[:to])
        end
        decision[:efficiency]
      end
    end
  end
end
