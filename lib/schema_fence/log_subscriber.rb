# frozen_string_literal: true

require "active_support"
require "active_support/log_subscriber"
require_relative "instrumentation"

module SchemaFence
  # Writes one line per schema_fence event (see {Instrumentation}) to {Configuration#logger}, or
  # to the Rails logger when none is set. Levels: fetch and batch_start at debug; enqueue,
  # batch_finish and cutover_step at info; batch_failure at warn; guard_violation, and any event
  # whose block raised (a mis-pointed connection on fetch), at error; a fetch refused because a
  # cutover changed the epoch since the scheduler's fetch, at info.
  #
  # The Railtie attaches it; elsewhere setting {Configuration#logger} does, or:
  #
  #   SchemaFence::LogSubscriber.attach!
  class LogSubscriber < ActiveSupport::LogSubscriber
    @attach_lock = Mutex.new

    class << self
      # Subscribes to the +schema_fence+ events, once per process.
      # @return [void]
      def attach!
        @attach_lock.synchronize do
          return if @attached

          attach_to Instrumentation::NAMESPACE.to_sym
          @attached = true
        end
      end
    end

    # @return [Logger, nil] {Configuration#logger}, else the Rails logger
    def logger
      SchemaFence.configuration.logger || super
    end

    # @param event [ActiveSupport::Notifications::Event]
    def enqueue(event)
      p = event.payload
      what = "#{p[:job_class_name]} on #{p[:table_name]}.#{p[:column_name]}"
      return error { line(event, "#{what} not queued: #{raised(p)}") } if p[:exception]

      info { line(event, "#{what} #{p[:outcome]} as migration #{p[:id]}, tagged #{p[:gitlab_schema]}") }
    end

    # @param event [ActiveSupport::Notifications::Event]
    def migration_not_found(event)
      p = event.payload
      warn do
        line(event, "ensure_batched_background_migration_is_finished: no migration #{p[:job_class_name]} on " \
                    "#{p[:table_name]}.#{p[:column_name]} with arguments #{p[:job_arguments].inspect}: nothing to finish")
      end
    end

    # @param event [ActiveSupport::Notifications::Event]
    def fetch(event)
      p = event.payload
      if p[:exception]
        # A changed epoch is the expected end of an execution enqueued before a cutover.
        return info { line(event, "refused: #{raised(p)}") } if p[:exception_object].is_a?(EpochChangedError)

        return error { line(event, "refused: #{raised(p)}") }
      end

      found = case p[:result]
              when :batch then "claimed job #{p[:job_id]}"
              when :migrations then "migrations #{Array(p[:migration_ids]).inspect} at epoch #{p[:epoch]}"
              else p[:result].to_s
              end
      target = p[:migration_id] ? " of migration #{p[:migration_id]}" : ""
      debug { line(event, "#{found}#{target} (#{event.duration.round(1)} ms)") }
    end

    # @param event [ActiveSupport::Notifications::Event]
    def batch_start(event)
      debug { line(event, "#{batch(event.payload)} attempt #{event.payload[:attempt]} started") }
    end

    # @param event [ActiveSupport::Notifications::Event]
    def batch_finish(event)
      p = event.payload
      info { line(event, "#{batch(p)} done in #{seconds(p[:duration])}: #{p[:completion]}") }
    end

    # @param event [ActiveSupport::Notifications::Event]
    def batch_failure(event)
      p = event.payload
      warn do
        line(event, "#{batch(p)} attempt #{p[:attempt]} failed in #{seconds(p[:duration])}" \
                    "#{' (statement timeout: split)' if p[:timed_out]}: #{p[:error_class]}: #{p[:error_message]}; " \
                    "#{p[:completion]}")
      end
    end

    # @param event [ActiveSupport::Notifications::Event]
    def guard_violation(event)
      p = event.payload
      error { line(event, "#{batch(p)} stopped by the statement guard: #{p[:error_message]}") }
    end

    # @param event [ActiveSupport::Notifications::Event]
    def cutover_step(event)
      p = event.payload
      done = p[:skipped] ? "finished by an earlier run" : "done in #{seconds(p[:duration])}"
      info { line(event, "step #{p[:step]} #{done}") }
    end

    # @param event [ActiveSupport::Notifications::Event]
    def migration_held(event)
      p = event.payload
      warn do
        line(event, "migration #{p[:migration_id]} (#{p[:table_name]}) on hold until " \
                    "#{p[:on_hold_until].utc.iso8601} because #{p[:reason]} (#{p[:indicator]})")
      end
    end

    # @param event [ActiveSupport::Notifications::Event]
    def batch_size_change(event)
      p = event.payload
      info do
        line(event, "migration #{p[:migration_id]} batch size #{p[:from]} -> #{p[:to]} " \
                    "(time efficiency #{p[:efficiency]} after job #{p[:job_id]})")
      end
    end

    # @param event [ActiveSupport::Notifications::Event]
    def optimizer_failure(event)
      warn { line(event, "the batch optimizer failed for migration #{event.payload[:migration_id]}: #{event.payload[:error]}") }
    end

    private

    def line(event, text)
      name = event.name.delete_suffix(".#{Instrumentation::NAMESPACE}")
      database = event.payload[:database]
      "schema_fence #{name}#{" #{database}" if database}: #{text}".gsub(/\s*\n\s*/, " ")
    end

    def batch(payload)
      "job #{payload[:job_id]} of migration #{payload[:migration_id]} (#{payload[:job_class_name]} on " \
        "#{payload[:table_name]}, #{payload[:gitlab_schema]}) #{keys(payload)}"
    end

    def keys(payload)
      return "cursor #{payload[:min_cursor].inspect}..#{payload[:max_cursor].inspect}" if payload[:min_cursor]

      "keys #{payload[:min_value]}..#{payload[:max_value]}"
    end

    def raised(payload)
      payload[:exception]&.join(": ")
    end

    def seconds(value)
      value ? format("%.3fs", value) : "?"
    end
  end
end
