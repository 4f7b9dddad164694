# frozen_string_literal: true

module SchemaFence
  # The base class of Ruby batched background migration jobs, GitLab's shape:
  #
  #   class BackfillCiBuildsDone < SchemaFence::BatchedMigrationJob
  #     job_arguments :value
  #
  #     def perform
  #       each_sub_batch { |sub_batch| sub_batch.update_all(done: value) }
  #     end
  #   end
  #
  # It runs on the ActiveRecord connection of the worker's database, with the statement guard on:
  # a statement reaching a table of another database raises CrossDatabaseAccessError unsent.
  class BatchedMigrationJob
    class << self
      # Names the job arguments, in order, as readers.
      def job_arguments(*names)
        names.each_with_index do |name, i|
          define_method(name) { batch_job_arguments[i] }
        end
      end

      # GitLab's label for metrics; kept for compatibility.
      def operation_name(name = nil)
        @operation_name = name if name
        @operation_name
      end
    end

    attr_reader :batch, :connection_class

    # @param batch [Batch]
    # @param connection_class [Class] an ActiveRecord class connected to the worker's database
    def initialize(batch:, connection_class:)
      @batch = batch
      @connection_class = connection_class
    end

    # Runs the batch; subclasses implement it, usually with {#each_sub_batch}.
    def perform
      raise NotImplementedError, "#{self.class.name}#perform"
    end

    # The connection the batch runs on: the one {JobConnection} leased to this thread for the
    # batch (Rails 7.2+: +lease_connection+, which +connection+ deprecates and
    # +permanent_connection_checkout = :disallowed+ refuses; Rails 6.1 and 7.0-7.1: +connection+,
    # the same per-thread connection under its older name).
    #
    # @return [ActiveRecord::ConnectionAdapters::AbstractAdapter] the worker's database connection
    def connection
      connection_class.respond_to?(:lease_connection) ? connection_class.lease_connection : connection_class.connection
    end

    # @return [Integer] the batch's first key
    def start_id = batch.min_value
    # @return [Integer] the batch's last key
    def end_id = batch.max_value
    # @return [Integer] keys per sub-batch
    def sub_batch_size = batch.sub_batch_size
    # @return [Integer] milliseconds to pause between sub-batches
    def pause_ms = batch.pause_ms
    # @return [String] the table being migrated
    def batch_table = batch.table_name
    # @return [String] the batching column
    def batch_column = batch.column_name

    # @return [Array] the migration's job arguments, as queued
    def batch_job_arguments
      @batch_job_arguments ||= batch.job_arguments
    end

    # Yields an ActiveRecord relation per sub-batch of at most sub_batch_size keys, in key order,
    # pausing pause_ms between them.
    #
    # @param batching_scope [Proc, nil] narrows the relation (e.g. ->(r) { r.where(done: 0) })
    def each_sub_batch(batching_scope: nil)
      model = batchable_model
      column = batch_column
      scope = model.where(column => start_id..end_id)
      scope = batching_scope.call(scope) if batching_scope
      from = start_id
      loop do
        first = scope.where(model.arel_table[column].gteq(from)).order(column).limit(1).pluck(column).first
        break unless first

        last = scope.where(model.arel_table[column].gteq(first)).order(column)
                    .offset(sub_batch_size - 1).limit(1).pluck(column).first || end_id
        yield scope.where(column => first..last)
        break if last >= end_id

        from = last + 1
        sleep(pause_ms / 1000.0) if pause_ms.positive?
      end
    end

    private

    def batchable_model
      @batchable_model ||= begin
        table = batch_table
        Class.new(connection_class) do
          self.table_name = table
          self.inheritance_column = :_type_disabled
          def self.name = "SchemaFence::BatchableModel"
        end
      end
    end
  end
end
