# frozen_string_literal: true

module SchemaFence
  # Walks a batch's key range in sub-batches through ActiveRecord, for Ruby jobs.
  #
  # Bounds go in as hash conditions (ranges), never Arel nodes with values: ActiveRecord binds
  # those as $n parameters, so every sub-batch sends the same statement texts. The guard's cache
  # (and ActiveRecord's prepared statements) then see each text once per batch shape instead of
  # once per sub-batch.
  module SubBatches
    module_function

    # Yields the first and last key of each run of at most +size+ keys of +scope+ in
    # +from+..+to+; the last run reaches +to+, so keys added meanwhile are covered too.
    def each_range(scope, column, from, to, size)
      loop do
        first = scope.where(column => from..).order(column).limit(1).pluck(column).first
        break unless first

        last = scope.where(column => first..).order(column).offset(size - 1).limit(1).pluck(column).first || to
        yield first, last
        break if last >= to

        from = last + 1
      end
    end

    # Yields each run of at most +size+ distinct values of +column+ in +from+..+to+.
    def each_distinct(scope, column, from, to, size)
      loop do
        values = scope.where(column => from..to).distinct.order(column).limit(size).pluck(column)
        break if values.empty?

        yield values
        break if values.size < size

        from = values.last + 1
      end
    end
  end
end
