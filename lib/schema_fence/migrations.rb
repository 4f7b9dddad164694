# frozen_string_literal: true

require "json"

module SchemaFence
  # One tracking row. +gitlab_schema+ is the tag; +progress+ is the fraction of the key range
  # covered by succeeded batches; +stale+ is true when the database holding the row no longer
  # serves its tag (left behind by a split). +min_value+/+max_value+ are nil on a cursor-batched
  # row (+min_cursor+/+max_cursor+, GitLab's composite keys); +not_runnable+ says why this library
  # does not run the row (a cursor, a batching strategy it does not have), nil when it does.
  # +waiting+ says why it is not running now (nil when it runs or has nothing to wait for):
  # +:paused+, +:on_hold+ (until +waiting_until+, for +hold_reason+ when recorded), +:behind+
  # (the migration +behind+, queued earlier on the same table, runs first), +:interval+ (due at
  # +waiting_until+), +:no_worker+ (no schema_fence worker is connected to the database) or
  # +:retry+ (+retryable+ failed batches wait for their retry); +clock+ is the database's time
  # when the row was read.
  Migration = Struct.new(:id, :job_class_name, :table_name, :column_name, :job_arguments, :gitlab_schema,
                         :status, :progress, :min_value, :max_value, :batch_size, :sub_batch_size,
                         :interval, :pause_ms, :jobs_succeeded, :jobs_failed, :created_at, :stale,
                         :batch_class_name, :min_cursor, :max_cursor, :not_runnable,
                         :waiting, :waiting_until, :hold_reason, :behind, :retryable, :clock,
                         keyword_init: true) do
    alias_method :tag, :gitlab_schema
    alias_method :stale?, :stale

    # @return [Boolean] whether this library runs the row
    def runnable? = not_runnable.nil?
  end

  # The tracking rows of one database:
  #
  #   SchemaFence::Migrations.on(ActiveRecord::Base.connection).each { |m| puts m.progress }
  class Migrations
    include Enumerable

    # @param connection [ActiveRecord::ConnectionAdapters::AbstractAdapter, PG::Connection, String]
    # @param topology [Topology, nil] to mark stale rows; default: the configured one, if any
    def self.on(connection, topology: nil)
      new(connection, topology:)
    end

    def initialize(connection, topology: nil)
      @connection = Connection.native(connection)
      @topology = topology || (SchemaFence.configuration.topology_path && SchemaFence.topology)
    end

    # @yieldparam migration [Migration]
    def each(&block)
      return enum_for(:each) unless block

      rows.each(&block)
    end

    # @return [Migration, nil]
    def find_by_id(id)
      rows.find { |m| m.id == Integer(id) }
    end

    # @return [Array<Migration>] rows whose tag this database no longer serves
    def stale
      rows.select(&:stale?)
    end

    private

    def rows
      allowed = allowed_schemas
      Store._migrations(@connection).map do |f|
        Migration.new(id: f[0], job_class_name: f[1], table_name: f[2], column_name: f[3],
                      job_arguments: JSON.parse(f[4]), gitlab_schema: f[5], status: f[6], progress: f[7],
                      min_value: f[8], max_value: f[9], batch_size: f[10], sub_batch_size: f[11],
                      interval: f[12], pause_ms: f[13], jobs_succeeded: f[14], jobs_failed: f[15],
                      created_at: f[16], stale: allowed ? !allowed.include?(f[5]) : false,
                      batch_class_name: f[17], min_cursor: f[18] && JSON.parse(f[18]),
                      max_cursor: f[19] && JSON.parse(f[19]), not_runnable: f[20], **waiting(f[21])).freeze
      end
    end

    def waiting(fields)
      kind, till, hold_reason, behind, retryable, clock = fields
      { waiting: kind, waiting_until: till && Time.at(till), hold_reason:, behind:, retryable:, clock: Time.at(clock) }
    end

    def allowed_schemas
      return unless @topology

      Identity.read(@connection)&.allowed_schemas(@topology)
    end
  end
end
