# frozen_string_literal: true

module SchemaFence
  # The app's databases and the gitlab_schemas each owns, from db/database_connections/*.yaml.
  class Topology
    # One logical database of the app.
    Database = Struct.new(:name, :gitlab_schemas, :lock_gitlab_schemas, :fallback_database,
                          keyword_init: true)

    # @param dir [String, Pathname] a db/database_connections directory
    # @return [Topology]
    def self.load(dir)
      _load(File.expand_path(dir.to_s))
    end

    # @return [Array<Database>] in file-name order
    def databases
      @databases ||= database_names.map { |name| database(name) }.freeze
    end

    # @return [Database, nil]
    def database(name)
      fields = _database_fields(name.to_s)
      return unless fields

      Database.new(name: fields[0], gitlab_schemas: fields[1], lock_gitlab_schemas: fields[2],
                   fallback_database: fields[3]).freeze
    end

    # The union of the gitlab_schemas of the named databases, sorted.
    #
    # @param serves [Array<String, Symbol>, String, Symbol] database names
    # @return [Array<Symbol>]
    # @raise [UnknownDatabaseError] for a name the topology does not define
    def allowed_schemas(serves)
      _allowed_schemas(Array(serves).map(&:to_s))
    end

    # The databases that share +name+'s physical database while they fall back to it, +name+ first.
    # @return [Array<String>]
    def served_with(name)
      _served_with(name.to_s)
    end

    # @return [String]

    def inspect
      "#<#{self.class.name} #{database_names.join(', ')} from #{path}>"
    end
  end
end
