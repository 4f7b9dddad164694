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
          klass.establish_connection(url)
          klass
        end
      end

      private

      # A constant name that tells databases apart however they are spelled ("ci", "ci-2").
      def constant_name(database, url)
        readable = database.to_s.gsub(/[^A-Za-z0-9]/) { |c| format("x%02x", c.ord) }
        "Db_#{readable}_#{Digest::SHA256.hexdigest(url)[0, 12]}"
      end
    end
  end
end
