# frozen_string_literal: true

module SchemaFence
  module Health
    # The holds in force on a database, as status shows them.
    module Holds
      module_function

      # @param until_at [Time] +on_hold_until+
      # @param reason [String, nil] +schema_fence_hold_reason+, when recorded
      # @return [String] e.g. "on hold until 2026-12-02 01:52:10 UTC because ..."
      def describe(until_at, reason)
        "on hold until #{until_at.utc.strftime('%Y-%m-%d %H:%M:%S UTC')}#{" because #{reason}" if reason}"
      end
    end
  end
end
