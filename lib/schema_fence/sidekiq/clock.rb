# frozen_string_literal: true

module SchemaFence
  module Sidekiq
    # Enqueues the schedulers every +every+ seconds from inside the Sidekiq server, for apps
    # without sidekiq-cron (Debian 13 has no package of it; Sidekiq Enterprise's periodic jobs
    # are another option). Each Sidekiq process runs a clock thread, and a Redis key set with NX
    # and a time to live of one period elects one enqueue per period across all of them, so
    # adding processes adds no schedules.
    #
    #   Sidekiq.configure_server do |config|
    #     config.on(:startup) do
    #       SchemaFence::Sidekiq::Clock.start(%w[MainBatchedMigrationSchedulerWorker CiBatchedMigrationSchedulerWorker])
    #     end
    #   end
    class Clock
      KEY = "schema_fence:clock"

      # Starts a clock and stops it when Sidekiq quiets or shuts down.
      # @param schedulers [Array<String>] the scheduler worker classes, by name
      # @param every [Numeric] seconds between enqueues
      # @return [Clock]
      def self.start(schedulers, every: 60)
        clock = new(schedulers, every:)
        clock.start
        ::Sidekiq.configure_server do |config|
          config.on(:quiet) { clock.stop }
          config.on(:shutdown) { clock.stop }
        end
        clock
      end

      def initialize(schedulers, every: 60)
        @schedulers = schedulers.map(&:to_s)
        @every = every
        @stop = Queue.new
      end

      # @return [Thread]
      def start
        @thread = Thread.new do
          loop do
            tick
            break if stopped_within?(@every)
          end
        end
      end

      def stop
        @stop << true
        @thread&.join(5)
      end

      # Enqueues each scheduler when this process wins the period; a Redis error skips one tick.
      # @return [Boolean] whether this process enqueued
      def tick
        won = ::Sidekiq.redis { |conn| conn.call("SET", key, Process.pid.to_s, "NX", "EX", [@every.ceil, 1].max) }
        return false unless won

        @schedulers.each { |scheduler| ::Sidekiq::Client.push("class" => scheduler, "args" => []) }
        true
      rescue StandardError => e
        ::Sidekiq.logger.warn("schema_fence: the clock skipped a tick: #{e.class}: #{e.message}")
        false
      end

      private

      # One key per set of schedulers: two apps on one Redis do not take each other's periods.
      def key
        "#{KEY}:#{@schedulers.sort.join(',')}"
      end

      # Sleeps in short steps so that stop is quick (Queue#pop(timeout:) needs Ruby 3.2).
      def stopped_within?(seconds)
        deadline = Process.clock_gettime(Process::CLOCK_MONOTONIC) + seconds
        loop do
          return true unless @stop.empty?

          left = deadline - Process.clock_gettime(Process::CLOCK_MONOTONIC)
          return false if left <= 0

          sleep([left, 0.2].min)
        end
      end
    end
  end
end
