# frozen_string_literal: true

require "active_support/notifications"

module SchemaFence
  # The events schema_fence publishes through ActiveSupport::Notifications, each named
  # +<event>.schema_fence+. Subscribe to one, or to all with a regular expression:
  #
  #   ActiveSupport::Notifications.subscribe("batch_finish.schema_fence") do |event|
  #     StatsD.increment("batches", tags: [event.payload[:database]])
  #   end
  #   ActiveSupport::Notifications.subscribe(/\.schema_fence\z/) { |event| ... }
  #
  # {LogSubscriber} writes one line per event to the Rails logger (or {Configuration#logger}).
  #
  # Payloads (every key is always present; a value may be nil where it says so):
  #
  # [enqueue]  +queue_batched_background_migration+ in a migration.
  #            +database+ (the migration connection's db_config name, nil when unknown),
  #            +job_class_name+, +table_name+, +column_name+, +job_arguments+ (Array),
  #            +gitlab_schema+ (Symbol: the tag; the restriction until the core has answered),
  #            +outcome+ (+:queued+, +:already_queued+ or +:finished+ for an empty table; nil
  #            when the enqueue raised), +id+ (the tracking row's id, nil when it raised).
  # [migration_not_found] +ensure_batched_background_migration_is_finished+ found no such
  #            migration on this database (GitLab warns and goes on). +database+,
  #            +job_class_name+, +table_name+, +column_name+, +job_arguments+.
  # [fetch]    A worker asks its database for work: {Worker#run_once},
  #            {Worker#run_migration_batch} (a fetch and a claim) and {Worker#fetch} (the
  #            scheduler's fetch). +database+, +migration_id+ (the one asked for, or nil),
  #            +result+ (+:batch+, +:idle+ when another database's worker covers this one,
  #            +:paused+ during a cutover, +:nothing+, or +:migrations+ for {Worker#fetch}),
  #            +migration_ids+ (Array, what {Worker#fetch} found; nil otherwise), +epoch+ (the
  #            identity epoch {Worker#fetch} saw; nil otherwise), +job_id+ (the claimed batch,
  #            or nil). A mis-pointed connection raises MisroutedConnectionError out of the
  #            block, a claim after a cutover changed the epoch EpochChangedError: ActiveSupport
  #            then adds +:exception+ and +:exception_object+.
  # [batch_start]    A claimed batch is about to run. +database+, +migration_id+, +job_id+,
  #                  +job_class_name+, +table_name+, +column_name+, +gitlab_schema+ (Symbol),
  #                  +min_value+, +max_value+ (0 for a cursor-batched migration's batch, whose keys are
  #                  +min_cursor+ and +max_cursor+, nil otherwise), +batch_size+, +sub_batch_size+,
  #                  +attempt+ (1 for the first try).
  # [batch_finish]   The batch ran and was recorded. The keys of batch_start, plus +completion+
  #                  (+:recorded+, +:migration_finished+, +:migration_failed+ or +:lease_lost+),
  #                  +metrics+ (Hash: +millis+ for a Ruby job; +sub_batches+, +rows+, +millis+
  #                  for a SQL job) and +duration+ (seconds, from batch_start).
  # [batch_failure]  The batch raised and the failure was recorded (retried later, split on a
  #                  statement timeout, or the migration failed). The keys of batch_start, plus
  #                  +completion+, +error_class+ (String), +error_message+, +exception_object+,
  #                  +timed_out+ (Boolean) and +duration+.
  # [guard_violation] The statement guard refused a statement of the batch
  #                   (CrossDatabaseAccessError); sent before the batch_failure of that batch.
  #                   The keys of batch_start, plus +error_message+ (names the table and both
  #                   gitlab_schemas) and +exception_object+.
  # [cutover_step]   One step of the cutover finished. +step+ (e.g. +:pause+, +:drain+,
  #                  +:catch_up+, +:promote+, +:stamp+, +:lock_writes+, +:resume+), +database+,
  #                  +duration+ (seconds), +skipped+ (true when an earlier run had finished it).
  # [migration_held] A health indicator said stop before a claim: the migration is on hold.
  #                  +database+, +migration_id+, +table_name+, +indicator+ (Symbol: +:autovacuum+,
  #                  +:replication_lag+, +:wal_rate+, +:archive_backlog+, +:long_transaction+ or
  #                  an application indicator's name), +reason+, +on_hold_until+ (Time).
  # [batch_size_change] The batch optimizer changed a migration's batch size after a job.
  #                  +database+, +migration_id+, +job_id+, +efficiency+ (the smoothed time
  #                  efficiency), +from+, +to+. batch_finish carries +efficiency+ too (nil
  #                  before 20 jobs).
  # [optimizer_failure] The optimizer could not run after a recorded batch. +database+,
  #                  +migration_id+, +error+.
  module Instrumentation
    # The suffix of every event name.
    NAMESPACE = "schema_fence"

    # The events schema_fence publishes.
    EVENTS = %i[enqueue fetch batch_start batch_finish batch_failure guard_violation cutover_step
                migration_not_found migration_held batch_size_change optimizer_failure].freeze

    module_function

    # Publishes +<event>.schema_fence+ with +payload+; with a block, around it (the block's
    # value is returned, and the block may add to +payload+).
    #
    # @param event [Symbol, String] one of {EVENTS}
    # @param payload [Hash]
    # @return [Object] the block's value
    # @raise [ArgumentError] for an event schema_fence does not publish
    def instrument(event, payload = {}, &)
      raise ArgumentError, "unknown schema_fence event #{event.inspect}; known: #{EVENTS.join(', ')}" \
        unless EVENTS.include?(event.to_sym)

      ActiveSupport::Notifications.instrument("#{event}.#{NAMESPACE}", payload, &)
    end

    # A fetch event's payload before the fetch.
    #
    # @param database [String]
    # @param migration_id [Integer, String, nil] the migration asked for
    # @return [Hash]
    def fetch_payload(database, migration_id)
      { database:, migration_id: migration_id && Integer(migration_id), result: nil, migration_ids: nil, epoch: nil,
        job_id: nil }
    end

    # Records in a fetch payload what a claim returned.
    #
    # @param payload [Hash] from {fetch_payload}
    # @param claimed [Batch, Symbol, nil] what the runner's claim returned
    # @return [Hash] the payload
    def claimed(payload, claimed)
      batch = claimed.is_a?(Batch)
      payload.merge!(result: batch ? :batch : (claimed || :nothing), job_id: batch ? claimed.job_id : nil)
    end

    # The payload keys every batch event shares.
    #
    # @param database [String]
    # @param batch [Batch]
    # @return [Hash]
    def batch_payload(database, batch)
      { database:, migration_id: batch.migration_id, job_id: batch.job_id, job_class_name: batch.job_class_name,
        table_name: batch.table_name, column_name: batch.column_name, gitlab_schema: batch.gitlab_schema,
        min_value: batch.min_value, max_value: batch.max_value, min_cursor: batch.min_cursor,
        max_cursor: batch.max_cursor, batch_size: batch.batch_size, sub_batch_size: batch.sub_batch_size,
        attempt: batch.attempts }
    end
  end
end
