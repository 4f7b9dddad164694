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

    # The name of the Rails database configuration an ActiveRecord connection belongs to.
    # @param connection [Object]
    # @return [String, nil] nil when the connection does not tell (a PG::Connection, a URL)
    def database_name(connection)
      connection.pool.db_config.name if connection.respond_to?(:pool) && connection.pool.respond_to?(:db_config)
    end

    # A PostgreSQL URL for an ActiveRecord class's database configuration.
    # @param connection_class [Class]
    # @return [String]
    def url_for(connection_class)
      raise ArgumentError, "give a url: or a connection_class:" unless connection_class

      url_for_config(connection_class.connection_db_config.configuration_hash)
    end

    # A PostgreSQL URL for a Rails database configuration hash (+url+, or host, port, username,
    # password and database).
    # @param config [Hash{Symbol => Object}]
    # @return [String]
    def url_for_config(config)
      return config[:url] if config[:url]

      require "uri"
      userinfo = [config[:username], config[:password]].compact.map { |p| URI.encode_www_form_component(p) }.join(":")
      host = config[:host] || "localhost"
      # A Unix-socket directory (host: /var/run/postgresql) goes into the URL percent-encoded,
      # which libpq and the core's client both read as a socket path.
      host = URI.encode_www_form_component(host) if host.start_with?("/")
      port = config[:port] ? ":#{config[:port]}" : ""
      "postgres://#{userinfo}#{userinfo.empty? ? '' : '@'}#{host}#{port}/#{URI.encode_www_form_component(config[:database])}"
    end
  end
end
