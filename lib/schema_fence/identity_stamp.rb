# frozen_string_literal: true

module SchemaFence
  # Stamps the identity of databases whose schema was loaded rather than migrated.
  #
  # A schema.rb or structure.sql holds the tracking tables but not the identity row (it is data)
  # nor what the dumps leave out, so after +db:schema:load+, +db:structure:load+, +db:setup+ or
  # +db:prepare+ a database has tables and no identity, and every worker refuses it. The Railtie
  # runs {stamp} after those tasks (+rake schema_fence:identity:stamp+ by hand); it runs the
  # install on each database of the environment whose schema has the identity table: the
  # identity is stamped as the install migration would have, and what the dump left out (this
  # library's indexes) is created again. Nothing happens on a database that already has one.
  module IdentityStamp
    module_function

    # @param env [String] the Rails environment whose databases to stamp
    # @param out [IO, nil] where to say each database's identity
    # @return [Array<Identity>] the identity of each database that has the tracking tables
    def stamp(env = Rails.env, out: nil)
      return [] unless SchemaFence.configuration.topology_path

      all = RailsConfigs.all(env)
      physical_databases(all).filter_map do |db_config|
        url = Connection.url_for_config(db_config.configuration_hash)
        next unless installed?(url)

        serves = Install.serves_in(db_config.name, db_config, all)
        identity = Install.up(url, name: db_config.name, serves:).identity
        out&.puts "schema_fence identity: #{identity.name} serving #{identity.serves.join(', ')} (epoch #{identity.epoch})"
        identity
      end
    end

    # One configuration per physical database: the first of the topology's databases that has
    # database tasks (a database that shares it is covered by its stamp).
    def physical_databases(configs)
      known = SchemaFence.topology.database_names.map(&:to_s)
      configs.select { |c| known.include?(c.name) && RailsConfigs.database_tasks?(c) }
             .uniq { |c| RailsConfigs.physical(c.configuration_hash) }
    end

    def installed?(url)
      Store._identity_table?(url)
    end
  end
end
