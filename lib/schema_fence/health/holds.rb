# frozen_string_literal: true

module SchemaFence
  module Health
    # The holds in force on a database, as status shows them.
    module Holds
      HOLDS = <<~SQL
        SELECT id, on_hold_until, schema_fence_hold_reason
        FROM batched_background_migrations
        WHERE id = ANY($1::bigint[]) AND on_hold_until > now()
      SQL
      private_constant :HOLDS

      module_function

      # @param connection [PG::Connection]
      # @param ids [Array<Integer>] migration row ids
      # @return [Hash{Integer => String}] e.g. "on hold until 2026-12-02 01:52:10 UTC because ..."
      def read(connection, ids)
        rows = connection.exec_params(HOLDS, [PG::TextEncoder::Array.new.encode(ids)]).values
        rows.to_h do |id, until_text, reason|
          until_at = Time.parse(until_text).utc.strftime("%Y-%m-%d %H:%M:%S UTC")
          [Integer(id), "on hold until #{until_at}#{" because #{reason}" if reason}"]
        end
      rescue PG::UndefinedColumn
        {} # installed before holds had a reason: the install adds the column
      end
    end
  end
end
