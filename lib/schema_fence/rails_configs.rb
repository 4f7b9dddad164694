# frozen_string_literal: true

module SchemaFence
  # The Rails database configurations of an environment, the same way on Rails 6.1 and 7.x.
  module RailsConfigs
    module_function

    # Every database configuration of +env+, hidden ones included: Rails 7.0+ leaves out of
    # +configs_for+ the entries marked +database_tasks: false+ (a database that still shares its
    # owner's) unless asked with +include_hidden: true+; Rails 6.1 has no hidden entries and no
    # such keyword.
    #
    # @param env [String]
    # @return [Array<ActiveRecord::DatabaseConfigurations::DatabaseConfig>]
    def all(env)
      configurations = ActiveRecord::Base.configurations
      if ActiveRecord::VERSION::MAJOR >= 7
        configurations.configs_for(env_name: env, include_hidden: true)
      else
        configurations.configs_for(env_name: env)
      end
    end

    # Rails 7.0+: an entry marked +database_tasks: false+ shares another entry's database. Rails
    # 6.1 knows no such key (its configs have no +database_tasks?+): every entry has tasks.
    #
    # @param db_config [ActiveRecord::DatabaseConfigurations::DatabaseConfig]
    def database_tasks?(db_config)
      !db_config.respond_to?(:database_tasks?) || db_config.database_tasks?
    end

    # What tells two configurations' databases apart (Rails parses a +url+ into these keys too).
    #
    # @param config [Hash{Symbol => Object}] a configuration hash
    # @return [Array<String>]
    def physical(config)
      [config[:host].to_s, (config[:port] || 5432).to_s, config[:database].to_s]
    end
  end
end
