# frozen_string_literal: true

module SchemaFence
  # Prometheus metrics of the workers, through prometheus-client-mmap (GitLab's client), with
  # GitLab's metric names where GitLab has one:
  #
  #   SchemaFence::Metrics.attach!               # once, at boot (the Railtie does not do it for you)
  #   # expose them, e.g. in config.ru:  use Prometheus::Client::Rack::Exporter
  #
  # batched_migration_job_batch_size, batched_migration_job_sub_batch_size (gauges, the last
  # batch's sizes), batched_migration_job_duration_seconds (gauge, the last batch's duration),
  # batched_migration_job_query_duration_seconds (histogram of batch durations),
  # batched_migration_job_updated_tuples_total (counter, rows a SQL job updated), labelled with
  # +migration_id+ and +migration_identifier+ (+Job/table.column+) as GitLab labels them, and
  # +database+. schema_fence's own: schema_fence_batches_total (by database and result:
  # succeeded, failed, lease_lost), schema_fence_guard_violations_total and
  # schema_fence_cutover_step_duration_seconds (by step), schema_fence_batch_optimizer_efficiency
  # (gauge, the optimizer's smoothed time efficiency, labelled as a batch) and
  # schema_fence_migration_holds_total (by database and health indicator). Labels never carry a
  # value from the migrated data.
  module Metrics
    BUCKETS = [0.1, 0.25, 0.5, 1, 5, 30, 120].freeze

    class << self
      # Subscribes to schema_fence's events and registers the metrics, once.
      # @param registry [Prometheus::Client::Registry]
      def attach!(registry: nil)
        require "prometheus/client"
        require "active_support/notifications"
        @lock ||= Mutex.new
        @lock.synchronize do
          return if @attached

          @metrics = register(registry || Prometheus::Client.registry)
          @subscribers = %w[batch_finish batch_failure guard_violation cutover_step migration_held].map do |event|
            ActiveSupport::Notifications.subscribe("#{event}.#{Instrumentation::NAMESPACE}") do |*args|
              record(event, ActiveSupport::Notifications::Event.new(*args).payload)
            end
          end
          @attached = true
        end
      end

      # Unsubscribes (a test attaching to a registry of its own, a process that stops exporting).
      def detach!
        (@lock ||= Mutex.new).synchronize do
          Array(@subscribers).each { |s| ActiveSupport::Notifications.unsubscribe(s) }
          @subscribers = nil
          @attached = false
        end
      end

      private

      def register(registry)
        {
          batch_size: registry.gauge(:batched_migration_job_batch_size, "Batch size for a batched migration job"),
          sub_batch_size: registry.gauge(:batched_migration_job_sub_batch_size,
                                         "Sub-batch size for a batched migration job"),
          duration: registry.gauge(:batched_migration_job_duration_seconds, "Duration for a batched migration job"),
          timings: registry.histogram(:batched_migration_job_query_duration_seconds,
                                      "Timings for a batched migration job", {}, BUCKETS),
          updated: registry.counter(:batched_migration_job_updated_tuples_total,
                                    "Number of tuples updated by batched migration job"),
          batches: registry.counter(:schema_fence_batches_total, "Batches run by schema_fence workers, by result"),
          violations: registry.counter(:schema_fence_guard_violations_total,
                                       "Statements the guard refused before they were sent"),
          cutover: registry.gauge(:schema_fence_cutover_step_duration_seconds, "Duration of the last run of a cutover step"),
          efficiency: registry.gauge(:schema_fence_batch_optimizer_efficiency,
                                     "Smoothed time efficiency (job duration / interval) the batch optimizer measured"),
          holds: registry.counter(:schema_fence_migration_holds_total, "Migrations put on hold, by health indicator")
        }
      end

      def record(event, payload)
        case event
        when "batch_finish" then batch_finished(payload)
        when "batch_failure" then count_batch(payload, :failed)
        when "guard_violation" then @metrics[:violations].increment(database: payload[:database].to_s)
        when "migration_held"
          @metrics[:holds].increment(database: payload[:database].to_s, indicator: payload[:indicator].to_s)
        when "cutover_step"
          @metrics[:cutover].set({ step: payload[:step].to_s }, payload[:duration].to_f) unless payload[:skipped]
        end
      end

      def batch_finished(payload)
        labels = labels(payload)
        size = payload[:min_cursor] ? payload[:batch_size] : payload[:max_value] - payload[:min_value] + 1
        @metrics[:batch_size].set(labels, size.to_i)
        @metrics[:sub_batch_size].set(labels, payload[:sub_batch_size].to_i) if payload[:sub_batch_size]
        @metrics[:duration].set(labels, payload[:duration].to_f)
        @metrics[:timings].observe(labels, payload[:duration].to_f)
        @metrics[:efficiency].set(labels, payload[:efficiency]) if payload[:efficiency]
        rows = payload.dig(:metrics, :rows)
        @metrics[:updated].increment(labels, rows) if rows
        count_batch(payload, payload[:completion] == :lease_lost ? :lease_lost : :succeeded)
      end

      def count_batch(payload, result)
        @metrics[:batches].increment(database: payload[:database].to_s, result: result.to_s)
      end

      def labels(payload)
        { database: payload[:database].to_s, migration_id: payload[:migration_id].to_s,
          migration_identifier: "#{payload[:job_class_name]}/#{payload[:table_name]}.#{payload[:column_name]}" }
      end
    end
  end
end
