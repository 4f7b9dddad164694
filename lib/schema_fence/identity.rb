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
      fields = Store._identity(Connection.native(connection))
      fields && new(name: fields[0], serves: fields[1], epoch: fields[2], stamped_at: fields[3]).freeze
    end

    # @return [Identity]
    # @raise [IdentityMissingError]
    def self.read!(connection)
      read(connection) || raise(IdentityMissingError, "this database has no schema_fence identity; " \
                                                      "run the schema_fence install migration on it first")
    end

    # The gitlab_schemas this physical database serves now.
    # @return [Array<Symbol>]
    def allowed_schemas(topology = SchemaFence.topology)
      topology.allowed_schemas(serves)
    end
  end
end
