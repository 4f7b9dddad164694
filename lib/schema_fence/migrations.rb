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

    # The fields a Store::MigrationRow gives as they are.
    FIELDS = %i[id job_class_name table_name column_name gitlab_schema status progress min_value max_value
                batch_size sub_batch_size interval pause_ms jobs_succeeded jobs_failed created_at
                batch_class_name not_runnable waiting hold_reason behind retryable].freeze

    # @param connection [ActiveRecord::ConnectionAdapters::AbstractAdapter, PG::Connection, String]
    # @param topology [Topology, nil] to mark stale rows; default: the configured one, if any
    def self.on(connection, topology: nil)
      new(connection, topology:)
    end

    # @param row [Store::MigrationRow] as the core read it
    # @param stale [Boolean]
    # @return [Migration]
    def self.build(row, stale:)
      Migration.new(**FIELDS.to_h { |name| [name, row.public_send(name)] },
                    job_arguments: JSON.parse(row.job_arguments_json),
                    min_cursor: row.min_cursor_json&.then { |j| JSON.parse(j) },
                    max_cursor: row.max_cursor_json&.then { |j| JSON.parse(j) },
                    waiting_until: row.waiting_until&.then { |t| Time.at(t) }, clock: Time.at(row.clock), stale:).freeze
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
      Store._migrations(@connection).map do |row|
        self.class.build(row, stale: allowed ? !allowed.include?(row.gitlab_schema) : false)
      end
    end

    def allowed_schemas
      return unless @topology

      Identity.read(@connection)&.allowed_schemas(@topology)
    end
  end
end
