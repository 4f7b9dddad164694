# frozen_string_literal: true

module SchemaFence
  # GitLab's job transition log (+batched_background_migration_job_transition_logs+): every status
  # change of a batch, whatever made it, is written by triggers the install puts on the jobs table,
  # with the exception's class and message for a failure. The log is partitioned by month, as
  # GitLab partitions it, and kept +retain_months+ (GitLab: 6).
  #
  #   SchemaFence::TransitionLog.maintain(url)   # or rake schema_fence:transition_log:maintain
  #   SchemaFence::TransitionLog.recent(url, [12, 13], limit: 5)
  module TransitionLog
    # One status change of a batch; statuses as GitLab names them (+:pending+, +:running+,
    # +:failed+, +:succeeded+), a code GitLab does not have as its Integer.
    Transition = Struct.new(:migration_id, :job_id, :previous_status, :next_status, :exception_class,
                            :exception_message, :created_at, keyword_init: true)

    # What {maintain} did: the partitions created and dropped (schema-qualified outside the search_path).
    Maintenance = Struct.new(:created, :dropped, keyword_init: true)

    module_function

    # Creates this month's partition and six months ahead where missing, and drops the partitions
    # wholly older than +retain_months+. Another worker maintaining at the same time makes this a
    # no-op. Run it monthly or more often (GitLab's partition manager runs every few hours).
    #
    # @param connection [ActiveRecord::ConnectionAdapters::AbstractAdapter, PG::Connection, String]
    # @param retain_months [Integer] at least 1
    # @return [Maintenance]
    def maintain(connection, retain_months: SchemaFence.configuration.transition_log_retain_months)
      report = _maintain(Connection.native(connection), Integer(retain_months))
      Maintenance.new(created: report.created, dropped: report.dropped)
    end

    # The latest status changes of each migration's batches, newest first.
    #
    # @param connection [ActiveRecord::ConnectionAdapters::AbstractAdapter, PG::Connection, String]
    # @param migration_ids [Array<Integer>] row ids of batched_background_migrations
    # @param limit [Integer] at most this many per migration
    # @return [Hash{Integer => Array<Transition>}]
    def recent(connection, migration_ids, limit: 5)
      rows = _recent(Connection.native(connection), migration_ids.map { |id| Integer(id) }, Integer(limit))
      rows.map { |r| transition(r) }.group_by(&:migration_id)
    end

    def transition(row)
      Transition.new(migration_id: row.migration_id, job_id: row.job_id, previous_status: row.previous_status,
                     next_status: row.next_status, exception_class: row.exception_class,
                     exception_message: row.exception_message, created_at: row.created_at)
    end
    private_class_method :transition
  end
end
