# frozen_string_literal: true

module SchemaFence
  # Table name → gitlab_schema, from GitLab's dictionary formats (docs/architecture.md section 4).
  # Lookups (#table_schema, #table_schema!, #resolve, #tables, #schemas, #size) are native.
  class Dictionary
    # Loads and merges every source. Each path is a flat map file (gitlab_schemas.yml), a
    # db/docs directory or a db/gitlab_schemas directory, told apart by content.
    #
    # @param paths [Array<String, Pathname>]
    # @return [Dictionary]
    # @raise [MalformedYamlError, ConflictingSchemaError, UndefinedSchemaError, MissingKeyError]
    def self.load(*paths)
      paths = paths.flatten.map { |p| File.expand_path(p.to_s) }
      raise ArgumentError, "Dictionary.load needs at least one path" if paths.empty?

      _load(paths)
    end

    # @return [String]

    def inspect
      "#<#{self.class.name} #{size} tables in #{schemas.size} gitlab_schemas from #{sources.join(', ')}>"
    end
  end
end
