# frozen_string_literal: true

module SchemaFence
  module Health
    # How a hold reads, wherever it is shown: status's +hold+, its waiting note and the
    # dashboard say the same words.
    module Holds
      module_function

      # @param until_at [Time] +on_hold_until+
      # @param reason [String, nil] +schema_fence_hold_reason+, when recorded
      # @param clock [Time] now on the database's clock, which set +until_at+
      # @return [String] e.g. "on hold until 14:10:00 UTC (in 9m 12s) because ..."
      def describe(until_at, reason, clock:)
        "on hold until #{Status::Waiting.at(until_at, clock)}#{" because #{reason}" if reason}"
      end
    end
  end
end
