# frozen_string_literal: true

module SchemaFence
  class Worker
    # Why {Worker#run_once} found nothing to run, from the migrations' waiting reasons (which the
    # core decides, as the fetch does). Read only when nothing was claimed.
    module NothingReason
      module_function

      # @param outcome [Outcome] the :nothing outcome
      # @return [Outcome] with +reason+ and +waiting+ set
      def explain(outcome, url, database)
        rows = Migrations.on(url).to_a
        active = rows.select { |m| !m.stale? && m.runnable? && %i[active finalizing paused].include?(m.status) }
        waiting = active.to_h do |m|
          ["#{database}_#{m.id}", Status::Waiting.note(database, m, rows) || "a batch is running on another worker"]
        end
        outcome.reason = reason(active)
        outcome.waiting = waiting
        outcome
      end

      def reason(active)
        return :no_active_migrations if active.none? { |m| m.status != :paused }
        return :running_elsewhere if active.all? { |m| m.waiting.nil? }

        :waiting
      end
    end
  end
end
