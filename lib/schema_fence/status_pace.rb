# frozen_string_literal: true

module SchemaFence
  class Status
    # How fast a migration goes and how long it has left, from its latest succeeded batches
    # (+[[keys, started, finished], ...]+, epoch seconds).
    module Pace
      module_function

      # Keys per second between the first and the last finish of the window (the time between
      # batches included, so it is the pace the migration really keeps). One batch alone has no
      # such span: it stands for its interval, the least time a batch takes on the wall (a
      # finalize runs back to back: there its own time).
      def rate(jobs, row)
        jobs = jobs.sort_by(&:last)
        span = jobs.last[2] - jobs.first[2]
        return jobs.drop(1).sum(&:first) / span if jobs.size > 1 && span.positive?

        last = jobs.last
        took = last[1] ? last[2] - last[1] : 0.0
        took = [took, row.interval.to_f].max unless row.status == :finalizing
        took.positive? ? last[0] / took : nil
      end

      # The seconds left at +rate+ from the latest finish, less the time since then: a countdown
      # between batches (never below a second while keys are left).
      def eta(status, keys_left, rate, recent, clock)
        return 0 if %i[finished finalized].include?(status)
        return unless %i[active finalizing].include?(status) && rate&.positive?

        since = clock.to_f - recent.map(&:last).max
        [((keys_left / rate) - since).ceil, 1].max
      end
    end
  end
end
