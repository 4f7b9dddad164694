# frozen_string_literal: true

module SchemaFence
  # The base class of Ruby batched background migration jobs, GitLab's shape:
  #
  #   class BackfillCiBuildsDone < SchemaFence::BatchedMigrationJob
  #     job_arguments :value
  #     scope_to ->(relation) { relation.where(done: nil) }
  #     operation_name :update_all
  #     feature_category :continuous_integration
  #
  #     def perform
  #       each_sub_batch { |sub_batch| sub_batch.update_all(done: value) }
  #     end
  #   end
  #
  # It runs on the ActiveRecord connection of the worker's database, with the statement guard on:
  # a statement reaching a table of another database raises CrossDatabaseAccessError unsent.
  class BatchedMigrationJob
    extend JobMacros

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
    # @return [Array<Integer>, nil] a cursor batch's first key (GitLab's +start_cursor+), both
    #   cursors included in the batch
    def start_cursor = batch.min_cursor
    # @return [Array<Integer>, nil] a cursor batch's last key (GitLab's +end_cursor+)
    def end_cursor = batch.max_cursor

    # @return [Boolean] whether the batch walks a cursor (GitLab's composite keys)
    def cursor? = !batch.cursor_columns.nil?

    # The columns the batch's cursors are over, which the claim walked: the +cursor+ columns stored
    # when the migration was queued here, or the table's primary key for a row GitLab wrote. A job
    # class declaring other columns with {JobMacros#cursor} is refused rather than run over a range
    # it would read differently.
    #
    # @return [Array<String>, nil]
    # @raise [InvalidArgumentError] when the class's +cursor+ names other columns
    def cursor_columns
      columns = batch.cursor_columns
      declared = self.class.cursor_columns
      if columns && declared && declared != columns
        raise InvalidArgumentError, "#{self.class.name} declares cursor #{declared.join(', ')}, but batch " \
                                    "#{batch.job_id} walks #{batch_table} by #{columns.join(', ')}"
      end
      columns
    end

    # @return [Array] the migration's job arguments, as queued
    def batch_job_arguments
      @batch_job_arguments ||= batch.job_arguments
    end

    # The batch's rows narrowed by {JobMacros#scope_to} (GitLab's +filter_batch+).
    # @param relation [ActiveRecord::Relation]
    # @return [ActiveRecord::Relation]
    def filter_batch(relation)
      relation
    end

    # Yields an ActiveRecord relation per sub-batch of at most sub_batch_size keys, in key order,
    # pausing pause_ms between them.
    #
    # @param batching_scope [Proc, nil] narrows the relation (e.g. ->(r) { r.where(done: 0) })
    # @param batching_arguments [Hash] GitLab's each_batch options; schema_fence walks the
    #   batching column in key order whatever they say (+order_hint+ and the like change nothing)
    # @param operation_name [Symbol, nil] GitLab's metrics label, accepted and unused
    # (The block is named: Ruby 3.1 cannot forward an anonymous one after keyword parameters.)
    def each_sub_batch(batching_scope: nil, batching_arguments: {}, operation_name: nil, &block)
      _ = [batching_arguments, operation_name]
      scope = batch_scope
      scope = batching_scope.call(scope) if batching_scope
      return each_cursor_sub_batch(scope, &block) if cursor?

      each_id_sub_batch(scope, batching_scope || filtered?, &block)
    end

    # Yields a relation per sub-batch of at most sub_batch_size distinct values of the batching
    # column (GitLab's +distinct_each_batch+, for a non-unique column): every row whose value is
    # one of them.
    #
    # @param batching_arguments [Hash] accepted as in {#each_sub_batch}
    # @param operation_name [Symbol, nil] accepted and unused
    def distinct_each_batch(batching_arguments: {}, operation_name: nil, &)
      _ = [batching_arguments, operation_name]
      raise InvalidArgumentError, "distinct_each_batch walks one column; batch #{batch.job_id} is cursor-batched" if cursor?

      scope = batch_scope
      SubBatches.each_distinct(scope, batch_column, start_id, end_id, sub_batch_size) do |values|
        yield scope.where(batch_column => values)
        pause
      end
    end

    private

    def batch_scope
      return filter_batch(batchable_model.where(cursor_range(start_cursor, end_cursor))) if cursor?

      filter_batch(batchable_model.where(batch_column => start_id..end_id))
    end

    def cursor_range(from, to) = CursorSubBatches.between(batchable_model, cursor_columns, from, to)

    def each_id_sub_batch(scope, filtered)
      ranges = (consecutive_sub_batches unless filtered) ||
               SubBatches.enum_for(:each_range, scope, batch_column, start_id, end_id, sub_batch_size)
      ranges.each do |first, last|
        yield scope.where(batch_column => first..last)
        pause
      end
    end

    # Whether the job class narrows its batches ({JobMacros#scope_to}).
    def filtered?
      method(:filter_batch).owner != BatchedMigrationJob
    end

    # The claim counted every key of the batch (a dense range): sub-batches of sub_batch_size
    # consecutive keys, found without walking them again. Only for the unfiltered table: a
    # scope_to or batching_scope walks its own rows, as GitLab's each_batch does.
    def consecutive_sub_batches
      batch.consecutive_sub_batches if batch.respond_to?(:consecutive_sub_batches)
    end

    def each_cursor_sub_batch(scope)
      CursorSubBatches.each_range(scope, cursor_columns, start_cursor, end_cursor, sub_batch_size) do |first, last|
        yield scope.where(cursor_range(first, last))
        pause
      end
    end

    def pause
      sleep(pause_ms / 1000.0) if pause_ms.positive?
    end

    def batchable_model
      @batchable_model ||= begin
        table = batch_table
        keyless = cursor?
        Class.new(connection_class) do
          self.table_name = table
          # A cursor batch walks a composite key, which Rails 6.1 warns about on every load; the
          # walk needs no primary key of the model.
          self.primary_key = nil if keyless
          self.inheritance_column = :_type_disabled
          def self.name = "SchemaFence::BatchableModel"
        end
      end
    end
  end
end
