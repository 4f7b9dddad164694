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

    # A PostgreSQL URL for an ActiveRecord class's database configuration.
    # @param connection_class [Class]
    # @return [String]
    def url_for(connection_class)
      raise ArgumentError, "give a url: or a connection_class:" unless connection_class

      config = connection_class.connection_db_config.configuration_hash
      return config[:url] if config[:url]

      require "uri"
      userinfo = [config[:username], config[:password]].compact.map { |p| URI.encode_www_form_component(p) }.join(":")
      host = config[:host] || "localhost"
      port = config[:port] ? ":#{config[:port]}" : ""
      "postgres://#{userinfo}#{userinfo.empty? ? '' : '@'}#{host}#{port}/#{URI.encode_www_form_component(config[:database])}"
    end
  end
end
