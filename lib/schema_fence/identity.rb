# frozen_string_literal: true

module SchemaFence
  # The identity stored inside a physical database: its name, the logical databases it serves,
  # and the epoch the cutover raises.
  Identity = Struct.new(:name, :serves, :epoch, :stamped_at, keyword_init: true) do
    # Reads the identity of the database +connection+ reached; nil before the install.
    #
    # @param connection [ActiveRecord::ConnectionAdapters::AbstractAdapter, PG::Connection, String]
    # @return [Identity, nil]
    def self.read(connection)
      Store._identity(Connection.native(connection))&.then { |row| from_row(row) }
    end

    # @param row [Store::IdentityRow]
    # @return [Identity]
    def self.from_row(row)
      new(name: row.name, serves: row.serves, epoch: row.epoch, stamped_at: row.stamped_at).freeze
    end

    # @return [Identity]
    # @raise [IdentityMissingError]
    def self.read!(connection)
      read(connection) || raise(IdentityMissingError, "this database has no schema_fence identity; " \
                                                      "run the schema_fence install migration on it first")
    end

    # Adopts a copy of a database on purpose (a restore into another cluster, a CREATE DATABASE
    # ... TEMPLATE): workers refuse a copy (IdentityMismatchError) until its identity is stamped
    # where it now is. The epoch goes up, so no view from before the adoption can claim.
    #
    # @param connection [String, PG::Connection, ActiveRecord::ConnectionAdapters::AbstractAdapter]
    # @param name [String, Symbol] the logical database it is now
    # @param serves [Array<String, Symbol>] the logical databases it serves (name among them)
    # @return [Identity]
    # @raise [InvalidArgumentError] when name is not among serves; nothing is changed
    # @raise [IdentityMissingError] when the database has no identity to adopt
    def self.adopt(connection, name:, serves:)
      from_row(Store._adopt(Connection.native(connection), name.to_s, Array(serves).map(&:to_s)))
    end

    # The gitlab_schemas this physical database serves now.
    # @return [Array<Symbol>]
    def allowed_schemas(topology = SchemaFence.topology)
      topology.allowed_schemas(serves)
    end
  end
end
