# frozen_string_literal: true

require "uri"

module SchemaFence
  # A throwaway PostgreSQL server of its own, for the test suite, the benchmarks and bin/demo
  # (docs/architecture.md section 13): initdb into a temporary directory (as the +postgres+ user
  # when run as root), +fsync=off+, a free port on 127.0.0.1, +wal_level=logical+ (for replicas,
  # and the reverse replication of a cutover). Loaded by lib/schema_fence/testing.rb only.
  #
  # Every cluster started in this process is stopped, and its directory removed, when the process
  # exits (an +at_exit+ hook); a process killed outright leaves an orphan that the next {start}
  # (in any process) stops and removes.
  #
  # @example
  #   cluster = SchemaFence::Cluster.start
  #   url = cluster.create_database("main")  # => "postgres://postgres@127.0.0.1:PORT/main"
  #   replica = cluster.replica
  #   replica.in_recovery?                   # => true
  #   cluster.stop
  #
  # Native methods, besides those below: {#port}, {#dir} (the cluster's temporary directory,
  # removed by {#stop}), {#data_dir}, {#log_path}, {#in_recovery?}, {#restart} (fast shutdown,
  # then start on the same port; the data survives), {#kill} (SIGKILL to every server process,
  # as a crash; {#restart} brings it back) and {#stopped?}. They raise {ClusterError} on failure,
  # with the command that failed and the tail of the server log.
  class Cluster
    @started = []
    @started_lock = Mutex.new
    @owner_pid = Process.pid

    class << self
      # Starts a new cluster.
      #
      # @param settings [Hash{String, Symbol => String, Integer, Boolean}] extra server settings,
      #   applied after the defaults and kept by replicas, e.g. +{ synchronous_commit: true }+
      #   (the default is +off+, so {#kill} can lose the last moment's commits).
      # @return [Cluster]
      # @raise [ClusterError]
      def start(settings: {})
        register(_start(settings.map { |name, value| [name.to_s, setting_value(value)] }))
      end

      # Creates a database on any server, e.g. the one +DATABASE_URL+ names.
      #
      # @param server_url [String] a URL of any database on that server
      # @param name [String] the new database's name (quoted; any valid name works)
      # @return [String] the new database's URL
      # @raise [ClusterError] when it cannot connect, or the database exists
      def create_database_at(server_url, name)
        _create_database_at(server_url.to_s, name.to_s)
        uri = URI.parse(server_url.to_s)
        uri.path = "/#{URI.encode_www_form_component(name.to_s).gsub('+', '%20')}"
        uri.to_s
      end

      # @return [Array<Cluster>] the clusters this process started and has not stopped
      def started
        @started_lock.synchronize { @started.dup }
      end

      # Stops every cluster this process started (replicas first). Run at exit.
      # @return [void]
      def stop_all
        return unless Process.pid == @owner_pid # a forked child leaves its parent's clusters be

        started.reverse_each do |cluster|
          cluster.stop
        rescue Error => e
          warn "schema_fence: #{e.message}"
        end
      end

      # Adds a cluster to those {stop_all} stops.
      # @api private
      # @return [Cluster] the cluster
      def register(cluster)
        @started_lock.synchronize { @started << cluster }
        cluster
      end

      # Removes a stopped cluster from those {stop_all} stops.
      # @api private
      # @return [void]
      def unregister(cluster)
        @started_lock.synchronize { @started.delete(cluster) }
      end

      private

      def setting_value(value)
        case value
        when true then "on"
        when false then "off"
        when Integer, Float then value.to_s
        else "'#{value.to_s.gsub("'", "''")}'"
        end
      end
    end

    # @param database [String] a database name
    # @return [String] +postgres://postgres@127.0.0.1:PORT/DATABASE+
    # @raise [ClusterError] once stopped
    def url(database = "postgres")
      _url(database.to_s)
    end

    # Creates a database.
    #
    # @param name [String]
    # @return [String] its URL
    # @raise [ClusterError] when it exists, or the name is invalid
    def create_database(name)
      _create_database(name.to_s)
      url(name)
    end

    # A streaming replica of this cluster (+pg_basebackup -c fast -R -X stream+), started on its
    # own port and accepting read-only connections. It is stopped at exit like any cluster.
    #
    # @return [Cluster]
    # @raise [ClusterError]
    def replica
      Cluster.register(_replica)
    end

    # Stops the server and removes its directory; a no-op once stopped.
    #
    # @return [void]
    # @raise [ClusterError] when the server will not stop or the directory cannot be removed
    def stop
      _stop
    ensure
      Cluster.unregister(self)
    end

    # @return [String] the port, or "stopped", and the directory
    def inspect
      state = stopped? ? "stopped" : "port #{port}"
      "#<#{self.class.name} #{state} #{dir}>"
    end
  end
end

at_exit { SchemaFence::Cluster.stop_all }
