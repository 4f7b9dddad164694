# frozen_string_literal: true

require "digest"

module SchemaFence
  # The ActiveRecord connection classes of workers configured by URL: one abstract class per
  # (database, URL), named after both, e.g. SchemaFence::WorkerRecord::Main_3f2a9c01b2d4.
  #
  # ActiveRecord keys its connection pools by the connection class's name. One name for every
  # worker made the second database's establish_connection replace the first one's pool, so Ruby
  # jobs ran on whichever database connected last. A class per database and URL has a pool of
  # its own that nothing replaces; the same configuration always gets the same class.
  module WorkerRecord
    @lock = Mutex.new

    class << self
      # @param database [String, Symbol] the logical database (main, ci, ...)
      # @param url [String] the PostgreSQL URL its jobs connect to
      # @return [Class] an abstract ActiveRecord::Base subclass connected to +url+
      def for(database, url)
        require "active_record"
        name = constant_name(database, url)
        @lock.synchronize do
          next const_get(name, false) if const_defined?(name, false)

          klass = Class.new(ActiveRecord::Base) { self.abstract_class = true }
          # Named before it connects: the name is the key of its connection pool.
          const_set(name, klass)
          klass.establish_connection(active_record_config(url))
          klass
        end
      end

      # The ActiveRecord configuration of a PostgreSQL URL, in either of the shapes the core reads
      # (postgres://user:password@host:port/db, and postgresql:///db?host=...&port=..., the one
      # Connection.url_for_config builds so that a socket directory or a TLS key survives):
      # ActiveRecord reads the second shape's host as a socket of its own otherwise.
      # @return [Hash]
      def active_record_config(url)
        require "uri"
        uri = URI.parse(url)
        decode = ->(part) { part && !part.empty? ? URI.decode_www_form_component(part) : nil }
        config = { adapter: "postgresql", database: decode.call(uri.path.to_s.delete_prefix("/")),
                   host: decode.call(uri.host), port: uri.port, username: decode.call(uri.user),
                   password: decode.call(uri.password) }.compact
        config.merge(query_config(uri.query))
      end

      private

      # libpq's keys as ActiveRecord names them; +options+ (-c settings) are the core's alone.
      def query_config(query)
        params = URI.decode_www_form(query.to_s).to_h.transform_keys(&:to_sym)
        params[:username] = params.delete(:user) if params.key?(:user)
        params[:database] = params.delete(:dbname) if params.key?(:dbname)
        params[:prepared_statements] = params[:prepared_statements] != "false" if params.key?(:prepared_statements)
        params.except(:options)
      end

      # A constant name that tells databases apart however they are spelled ("ci", "ci-2").
      def constant_name(database, url)
        readable = database.to_s.gsub(/[^A-Za-z0-9]/) { |c| format("x%02x", c.ord) }
        "Db_#{readable}_#{Digest::SHA256.hexdigest(url)[0, 12]}"
      end
    end
  end
end
