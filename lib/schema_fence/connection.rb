# frozen_string_literal: true

module SchemaFence
  # What the native store accepts as a connection: a PostgreSQL URL (the core opens its own
  # connection) or a PG::Connection (used as is, inside the caller's transaction).
  module Connection
    module_function

    # @param connection [ActiveRecord::ConnectionAdapters::AbstractAdapter, PG::Connection, String]
    def native(connection)
      case connection
      when ->(c) { c.respond_to?(:raw_connection) } then connection.raw_connection
      when String, ->(c) { c.respond_to?(:exec_params) } then connection
      else
        raise ArgumentError, "expected an ActiveRecord connection, a PG::Connection or a PostgreSQL URL, " \
                             "got #{connection.class}"
      end
    end
  end
end
