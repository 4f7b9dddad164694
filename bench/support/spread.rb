# frozen_string_literal: true

module SchemaFence
  module Bench
    # Repeated measurements of both sides, printed as min / median / max: one median hides how far
    # this loaded machine moves between runs.
    class Spread
      attr_reader :values

      def initialize(values = [])
        @values = values
      end

      def <<(value)
        @values << value
        self
      end

      def min = sorted.first
      def max = sorted.last
      def median = sorted[sorted.size / 2]

      # "min / median / max" with +format+ (a lambda) applied to each.
      def to_s(format = ->(v) { Report.duration(v) })
        [min, median, max].map(&format).join(" / ")
      end

      private

      def sorted = @values.sort
    end
  end
end
