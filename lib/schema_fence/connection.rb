# frozen_string_literal: true

require "uri"

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

    # A PostgreSQL URL for an ActiveRecord class's database configuration (see {url_for_config}).
    # @param connection_class [Class]
    # @return [String]
    def url_for(connection_class)
      raise ArgumentError, "give a url: or a connection_class:" unless connection_class

      url_for_config(connection_class.connection_db_config.configuration_hash)
    end

    # Rails configuration keys passed on to the core's connection as they are (libpq's names).
    PASSED_ON = %i[
      sslmode sslrootcert sslcert sslkey sslcrl ssl_min_protocol_version ssl_max_protocol_version
      connect_timeout keepalives keepalives_idle keepalives_interval keepalives_count
      target_session_attrs tcp_user_timeout gssencmode
    ].freeze

    # Where libpq looks when no host is given (Debian's build): a Unix socket directory.
    DEFAULT_SOCKET_DIRECTORY = "/var/run/postgresql"

    # A PostgreSQL URL for a Rails database configuration hash, with nothing dropped: +url+ (its
    # own parameters kept), or host (a name, an address, a Unix socket directory, or a list),
    # port, username, password, database, the TLS keys (+sslmode+, +sslrootcert+, +sslcert+,
    # +sslkey+, ...), +connect_timeout+ and the keepalive keys, +variables+ and
    # +schema_search_path+ (as +-c+ options: session settings from the start), and
    # +prepared_statements: false+ (the core then keeps nothing prepared across transactions, as
    # PgBouncer's transaction pooling needs). Rails' +application_name+ is not copied: the core's
    # connections name themselves +schema_fence/<database>/<role>+.
    # @param config [Hash{Symbol => Object}]
    # @return [String]
    def url_for_config(config)
      config = config.transform_keys(&:to_sym)
      return config[:url] if config[:url] && !config.key?(:database)

      query = params_for(config).compact.map { |key, value| "#{key}=#{encode(value)}" }.join("&")
      "postgresql:///#{encode(config[:database])}?#{query}"
    end

    def params_for(config)
      params = base_params(config)
      PASSED_ON.each { |key| params[key] = config[key] unless config[key].nil? }
      options = session_options(config)
      params[:options] = options unless options.empty?
      params[:prepared_statements] = "false" if config[:prepared_statements].to_s == "false"
      params
    end

    def base_params(config)
      host = config[:host].to_s.empty? ? default_host : config[:host].to_s
      { host:, port: config[:port], user: config[:username] || config[:user], password: config[:password] }
    end

    def default_host
      File.directory?(DEFAULT_SOCKET_DIRECTORY) ? DEFAULT_SOCKET_DIRECTORY : "localhost"
    end

    # +-c name=value+ for each of Rails' +variables+ (except those left at the server's default)
    # and for +schema_search_path+, escaped as libpq's +options+ needs.
    def session_options(config)
      settings = (config[:variables] || {}).to_h.reject { |_, value| value.nil? || value.to_s == "default" }
      settings = settings.merge(search_path: config[:schema_search_path]) if config[:schema_search_path]
      settings.map { |name, value| "-c #{escape_option("#{name}=#{value}")}" }.join(" ")
    end

    def escape_option(text)
      text.to_s.gsub(/[\\ ]/) { |c| "\\#{c}" }
    end

    def encode(value)
      URI.encode_www_form_component(value.to_s).gsub("+", "%20")
    end
  end
end
