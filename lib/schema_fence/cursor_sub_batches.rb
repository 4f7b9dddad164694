# frozen_string_literal: true

module SchemaFence
  # Walks a cursor batch (GitLab's composite keys) in sub-batches through ActiveRecord, for Ruby
  # jobs: row comparisons over the cursor columns, +(a, b) >= ($1, $2)+, in keyset order.
  #
  # Values go in as bind parameters and names as Arel attributes (quoted), as {SubBatches} does
  # with hash conditions: every sub-batch sends the same statement texts.
  module CursorSubBatches
    module_function

    # Rows of +model+ whose cursor is between +from+ and +to+, both included.
    # @return [Arel::Nodes::And]
    def between(model, columns, from, to)
      Arel::Nodes::And.new([compare(model, columns, :gteq, from), compare(model, columns, :lteq, to)])
    end

    # Yields the first and last cursor of each run of at most +size+ rows of +scope+ from +from+
    # to +to+ (both included), in keyset order; the last run reaches +to+, so rows added
    # meanwhile are covered too.
    def each_range(scope, columns, from, to, size)
      model = scope.klass
      operator = :gteq
      loop do
        within = scope.where(compare(model, columns, :lteq, to))
        first = first_cursor(model, within.where(compare(model, columns, operator, from)), columns, 0)
        break unless first

        last = first_cursor(model, within.where(compare(model, columns, :gteq, first)), columns, size - 1) || to
        yield first, last
        break if (last <=> to) >= 0

        from = last
        operator = :gt
      end
    end

    def first_cursor(model, relation, columns, offset)
      attributes = columns.map { |c| model.arel_table[c] }
      row = relation.reorder(attributes.map(&:asc)).offset(offset).limit(1).pluck(*attributes).first
      row.nil? || row.is_a?(Array) ? row : [row]
    end

    # +(columns) op (values)+, the values bound in the columns' own types.
    def compare(model, columns, operator, values)
      left = Arel::Nodes::Grouping.new(columns.map { |c| model.arel_table[c] })
      right = Arel::Nodes::Grouping.new(columns.zip(values).map { |column, value| bind(model, column, value) })
      node = { gteq: Arel::Nodes::GreaterThanOrEqual, gt: Arel::Nodes::GreaterThan,
               lteq: Arel::Nodes::LessThanOrEqual }.fetch(operator)
      node.new(left, right)
    end

    def bind(model, column, value)
      Arel::Nodes::BindParam.new(
        ActiveRecord::Relation::QueryAttribute.new(column, value, model.type_for_attribute(column))
      )
    end
  end
end
