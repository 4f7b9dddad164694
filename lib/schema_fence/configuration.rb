# frozen_string_literal: true

# See lib/schema_fence.rb.
module SchemaFence
  # Where the dictionary and the topology come from. Set once at boot:
  #
  #   SchemaFence.configure do |c|
  #     c.dictionary_paths = ["db/docs", "db/gitlab_schemas"]
  #     c.topology_path = "db/database_connections"
  #   end
  class Configuration
    attr_reader :dictionary_paths, :topology_path

    def initialize
      @dictionary_paths = []
      @topology_path = nil
      @mutex = Mutex.new
    end

    def dictionary_paths=(paths)
      @mutex.synchronize { @dictionary = nil }
      @dictionary_paths = Array(paths)
    end

    def topology_path=(path)
      @mutex.synchronize { @topology = nil }
      @topology_path = path
    end

    # An already loaded dictionary (instead of paths).
    attr_writer :dictionary

    # An already loaded topology (instead of a path).
    attr_writer :topology

    # @return [Dictionary]
    def dictionary
      @mutex.synchronize do
        @dictionary ||= begin
          raise Error, "SchemaFence has no dictionary: set dictionary_paths in SchemaFence.configure" if dictionary_paths.empty?

          Dictionary.load(*dictionary_paths)
        end
      end
    end

    # @return [Topology]
    def topology
      @mutex.synchronize do
        @topology ||= begin
          raise Error, "SchemaFence has no topology: set topology_path in SchemaFence.configure" unless topology_path

          Topology.load(topology_path)
        end
      end
    end
  end

  # The process-wide configuration.
  class << self
    # @yieldparam config [Configuration]
    def configure
      yield configuration
      configuration
    end

    # @return [Configuration]
    def configuration
      @configuration ||= Configuration.new
    end

    def dictionary
      configuration.dictionary
    end

    def topology
      configuration.topology
    end
  end
end
