# frozen_string_literal: true

module SchemaFence
  class Status
    # Says in words why a migration waits ({Migration#waiting}, which the core decides).
    module Waiting
      module_function

      # @param database [String] the configured database listing the row
      # @param row [Migration]
      # @param rows [Array<Migration>] every row of that database (to name the one it is behind)
      # @return [String, nil]
      def note(database, row, rows)
        case row.waiting
        when :paused then "paused: no batch is claimed until it is resumed"
        when :on_hold then on_hold(row)
        when :behind then behind(database, row, rows)
        when :interval
          "waiting for its interval (#{row.interval}s between batches): next batch at #{at(row.waiting_until, row.clock)}"
        when :no_worker then "due, but no schema_fence worker is connected to #{database}"
        when :retry
          waits = row.retryable == 1 ? "batch waits" : "batches wait"
          "due: #{row.retryable} failed #{waits} for a retry, the next claim takes one"
        end
      end

      def on_hold(row)
        Health::Holds.describe(row.waiting_until, row.hold_reason, clock: row.clock)
      end

      def behind(database, row, rows)
        first = rows.find { |m| m.id == row.behind }
        job = first ? " (#{first.job_class_name})" : ""
        "behind #{database}_#{row.behind}#{job}: one migration of #{row.table_name} runs at a time, oldest first"
      end

      # A time as UTC, with how far off it is on the database's clock; with its date when it is a
      # day or more away (a hold set by hand), where the time of day alone is ambiguous.
      def at(time, clock)
        seconds = (time - clock).ceil
        shown = time.utc.strftime(seconds < 86_400 ? "%H:%M:%S" : "%F %H:%M:%S")
        "#{shown} UTC (in #{Status::TextRenderer.duration([seconds, 1].max)})"
      end
    end
  end
end
