# frozen_string_literal: true

require "securerandom"
require "uri"
require "schema_fence"

# The one place the suite gets PostgreSQL databases (docs/architecture.md section 13).
#
# By default the whole run shares one throwaway cluster, started on first use and stopped at
# exit ({SchemaFence::Cluster}). +DATABASE_URL+ points the suite at an existing server instead;
# +<NAME>_DATABASE_URL+ (e.g. +CI_DATABASE_URL+) points the databases asked for with +on: :ci+ at
# another one. Either way, each example takes a {fresh_database} of its own, so examples never
# see each other's tables. Databases made on an existing server are dropped at exit unless
# +SCHEMA_FENCE_KEEP_DATABASES=1+.
#
# Examples that need a cluster of their own (a replica, a restarted or killed server) call
# {start_cluster} or {with_cluster}; with +DATABASE_URL+ set these are skipped, with the reason.
#
# @example
#   url = Clusters.fresh_database("runner")          # a new, empty database
#   ci_url = Clusters.fresh_database("runner", on: :ci)
#   Clusters.with_cluster { |cluster| replica = cluster.replica; ... }
module Clusters
  # An existing server, named by a URL; answers #url and #create_database like a Cluster.
  Server = Struct.new(:base_url) do
    # @return [String] the URL of +database+ on this server (the base URL's own when nil)
    def url(database = nil)
      return base_url if database.nil?

      uri = URI.parse(base_url)
      uri.path = "/#{URI.encode_www_form_component(database.to_s).gsub('+', '%20')}"
      uri.to_s
    end

    # @return [String] the new database's URL
    def create_database(name)
      SchemaFence::Cluster.create_database_at(base_url, name)
    end

    def inspect
      "#<Clusters::Server #{base_url.sub(%r{//([^:/@]+):[^@]*@}, '//\1:***@')}>"
    end
  end

  OWN_CLUSTER_REASON = "needs a PostgreSQL cluster of its own (a replica, or a server it restarts " \
                       "or kills), and %s points the suite at an existing server; unset it to run " \
                       "this example against throwaway clusters"

  @lock = Mutex.new
  @counter = 0
  @servers = {}
  @shared = {}
  @made_on_servers = []

  class << self
    # The server databases come from: a throwaway cluster (one per +on:+), or the server of
    # +<ON>_DATABASE_URL+ / +DATABASE_URL+ when set.
    #
    # @param on [Symbol, String, nil] a logical database (+:main+, +:ci+, ...), for per-database URLs
    # @return [SchemaFence::Cluster, Server] either answers #url(database) and #create_database(name)
    def primary(on: nil)
      url = external_url(on)
      @lock.synchronize do
        next @servers[url] ||= Server.new(url) if url

        # Each logical database gets a throwaway cluster of its own, as in a split deployment;
        # without +on:+ the default cluster is shared.
        key = on&.to_sym || :default
        @shared.delete(key) if @shared[key]&.stopped?
        @shared[key] ||= SchemaFence::Cluster.start
      end
    end

    # Creates a database with a unique name and returns its URL.
    #
    # @param prefix [String] the start of the name, to tell databases apart in logs
    # @param on [Symbol, String, nil] see {primary}
    # @return [String] the new database's URL
    def fresh_database(prefix = "schema_fence", on: nil)
      name = unique_name(prefix)
      server = primary(on:)
      url = server.create_database(name)
      @lock.synchronize { @made_on_servers << [server, name] } if server.is_a?(Server)
      url
    end

    # Starts a cluster of the caller's own, which the caller stops (see {with_cluster}); it is
    # stopped at exit otherwise. Skips the example when DATABASE_URL points at an existing server.
    #
    # @param settings [Hash] see SchemaFence::Cluster.start
    # @return [SchemaFence::Cluster]
    def start_cluster(settings: {})
      variable = external_variable
      skip_example(format(OWN_CLUSTER_REASON, variable)) if variable
      SchemaFence::Cluster.start(settings:)
    end

    # Yields a cluster of its own, stopped afterwards even when the block raises.
    # @yieldparam cluster [SchemaFence::Cluster]
    def with_cluster(settings: {})
      cluster = start_cluster(settings:)
      yield cluster
    ensure
      cluster&.stop
    end

    # @return [Boolean] whether DATABASE_URL (or a per-database URL) points at an existing server
    def external?(on: nil)
      !external_url(on).nil?
    end

    # @api private: run at exit
    def drop_made_databases
      made = @lock.synchronize { @made_on_servers.dup.tap { @made_on_servers.clear } }
      return if made.empty? || ENV["SCHEMA_FENCE_KEEP_DATABASES"] == "1"

      require "pg"
      made.group_by(&:first).each do |server, pairs|
        PG.connect(server.base_url) do |conn|
          pairs.each { |_, name| conn.exec("DROP DATABASE IF EXISTS #{conn.quote_ident(name)} WITH (FORCE)") }
        end
      rescue StandardError, LoadError => e
        warn "spec/support/clusters: could not drop test databases on #{server.inspect}: #{e.message}"
      end
    end

    private

    def external_url(on)
      [on && "#{on.to_s.upcase}_DATABASE_URL", "DATABASE_URL"].compact.each do |name|
        value = ENV.fetch(name, "").strip
        return value unless value.empty?
      end
      nil
    end

    def external_variable
      ENV.keys.sort.find { |name| name.end_with?("DATABASE_URL") && !ENV[name].strip.empty? }
    end

    def unique_name(prefix)
      n = @lock.synchronize { @counter += 1 }
      base = prefix.to_s.downcase.gsub(/[^a-z0-9_]/, "_")
      suffix = "_#{Process.pid}_#{n}_#{SecureRandom.hex(3)}"
      "#{base[0, 63 - suffix.length]}#{suffix}"
    end

    def skip_example(reason)
      raise reason unless defined?(RSpec::Core::Pending)

      example = RSpec.current_example
      RSpec::Core::Pending.mark_skipped!(example, reason) if example
      raise RSpec::Core::Pending::SkipDeclaredInExample, reason
    end
  end
end

at_exit { Clusters.drop_made_databases }
