# frozen_string_literal: true

module SchemaFence
  # Creates the tracking tables and stamps the identity on one database. Idempotent.
  #
  # In a Rails migration (see lib/schema_fence/templates/install_schema_fence.rb):
  #
  #   def up
  #     SchemaFence::Install.up(connection)
  #   end
  module Install
    # What {up} did: the identity stamped, how many existing rows it tagged, and how many rows
    # carry a tag that differs from what the dictionary says of their table (nil without a
    # dictionary): fix those with {retag}.
    Report = Struct.new(:identity, :backfilled, :mistagged, keyword_init: true)

    module_function

    # @param connection [ActiveRecord::ConnectionAdapters::AbstractAdapter, PG::Connection, String]
    # @param name [String, Symbol, nil] the logical database; default: the connection's db_config name
    # @param serves [Array<String>, nil] the logical databases this physical database serves;
    #   default: +name+ plus the databases that fall back to it and have no database of their own
    # @param dictionary [Dictionary, nil] to tag existing GitLab rows without gitlab_schema
    # @return [Report]
    def up(connection, name: nil, serves: nil, dictionary: nil)
      name = (name || database_name(connection)).to_s
      serves = (serves || default_serves(connection, name)).map(&:to_s)
      dictionary ||= SchemaFence.configuration.dictionary_paths.empty? ? nil : SchemaFence.dictionary
      fields = Store._install(Connection.native(connection), name, serves, dictionary)
      identity = Identity.new(name: fields[0], serves: fields[1], epoch: fields[2], stamped_at: fields[3])
      warn_mistagged(fields[5])
      Report.new(identity: identity.freeze, backfilled: fields[4], mistagged: fields[5])
    end

    def warn_mistagged(count)
      return unless count&.positive?

      Kernel.warn "schema_fence: #{count} batched background migration(s) carry a gitlab_schema that differs from " \
                  "what the dictionary says of their table (GitLab's blanket gitlab_main on older ci rows?), or a " \
                  "table it does not know: list them with rake schema_fence:retag, fix them with APPLY=1"
    end

    # The statements the install runs (for review, or for apps that keep structure.sql).
    # @return [Array<String>]
    def schema_sql
      Store._schema_sql
    end

    def database_name(connection)
      return connection.pool.db_config.name if connection.respond_to?(:pool) && connection.pool.respond_to?(:db_config)

      raise ArgumentError, "cannot tell which database this connection is for: pass name: (e.g. \"main\")"
    end

    # A database that falls back to +name+ shares its physical database unless the app configures
    # it with its own database (Rails db_config without database_tasks: false).
    def default_serves(connection, name)
      topology = SchemaFence.topology
      topology.served_with(name).select do |db|
        db == name || !own_database?(connection, db)
      end
    end

    def own_database?(connection, db)
      return false unless defined?(ActiveRecord::Base) && connection.respond_to?(:pool)

      env = connection.pool.db_config.env_name
      config = ActiveRecord::Base.configurations.configs_for(env_name: env, name: db)
      return false unless config

      hash = config.configuration_hash
      return false if hash[:database_tasks] == false

      mine = connection.pool.db_config.configuration_hash
      %i[host port database].any? { |key| hash[key].to_s != mine[key].to_s }
    end
  end
end
