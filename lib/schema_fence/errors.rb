# frozen_string_literal: true

module SchemaFence
  # The root of every error schema_fence raises. The native core raises the subclass whose name
  # is its error variant's name plus "Error".
  class Error < StandardError; end

  # A dictionary or topology file could not be parsed; the message starts with "path:line:column".
  class MalformedYamlError < Error; end

  # Two dictionary sources give one table two different gitlab_schemas; the message names both.
  class ConflictingSchemaError < Error; end

  # A table names a gitlab_schema that the schema definitions (db/gitlab_schemas) do not define.
  class UndefinedSchemaError < Error; end

  # A db/docs, schema definition or database connection file lacks a required key.
  class MissingKeyError < Error; end

  # No resolution rule gives the table a gitlab_schema; the message names the sources searched.
  class UnknownTableError < Error; end

  # A dictionary or topology path could not be read.
  class SourceReadError < Error; end

  # A path is neither a flat map file, a db/docs directory nor a schema definitions directory.
  class UnrecognizedSourceError < Error; end

  # The database connections do not form a valid topology (duplicate names, bad fallbacks).
  class TopologyError < Error; end

  # A database name that the topology does not define.
  class UnknownDatabaseError < Error; end
end
