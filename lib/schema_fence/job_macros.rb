# frozen_string_literal: true

module SchemaFence
  # The class-level declarations of GitLab's batched migration jobs, for
  # {BatchedMigrationJob} subclasses.
  module JobMacros
    # Names the job arguments, in order, as readers; their number is checked when the
    # migration is queued (GitLab's +job_arguments_count+).
    def job_arguments(*names)
      names.each_with_index do |name, i|
        define_method(name) { batch_job_arguments[i] }
      end
      count = names.size
      define_singleton_method(:job_arguments_count) { count }
    end

    # @return [Integer] how many job arguments the job takes: 0 unless {#job_arguments} says
    def job_arguments_count
      0
    end

    # Narrows every batch's relation (GitLab's +scope_to+): +scope+ takes the relation and
    # returns it filtered.
    # @param scope [Proc]
    def scope_to(scope)
      define_method(:filter_batch) { |relation| instance_exec(relation, &scope) }
    end

    # GitLab's label for metrics.
    def operation_name(name = nil)
      @operation_name = name if name
      @operation_name
    end

    # GitLab's feature category of the job (for its error tracking), kept for compatibility.
    def feature_category(name = nil)
      @feature_category = name if name
      @feature_category
    end

    # GitLab's cursor batching over several columns (+cursor :id, :partition_id+): queueing the
    # job stores +min_cursor+/+max_cursor+, the first and last key in keyset order over them, which
    # must be integer, NOT NULL and led by a unique index or the primary key.
    def cursor(*columns)
      @cursor_columns = columns.map(&:to_s)
    end

    # @return [Array<String>, nil] the columns of {#cursor}
    def cursor_columns
      return @cursor_columns if defined?(@cursor_columns)

      superclass.respond_to?(:cursor_columns) ? superclass.cursor_columns : nil
    end
  end
end
