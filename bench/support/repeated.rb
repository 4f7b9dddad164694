# frozen_string_literal: true

module SchemaFence
  module Bench
    # Repeated, alternating measurements: each round times every side once, in an order that
    # turns each round so no side always runs first (a loaded machine drifts), and the report
    # gives min / median / max over the rounds for both sides.
    module Repeated
      module_function

      # @param rounds [Integer]
      # @param sides [Hash{String => Proc}] label => a block run once per round (timed)
      # @return [Hash{String => Array<Float>}] label => seconds of each round
      def alternate(rounds:, sides:)
        samples = sides.keys.to_h { |label| [label, []] }
        rounds.times do |round|
          sides.to_a.rotate(round).each do |label, block|
            started = Process.clock_gettime(Process::CLOCK_MONOTONIC)
            block.call
            samples[label] << (Process.clock_gettime(Process::CLOCK_MONOTONIC) - started)
          end
        end
        samples
      end

      # [min, median, max]
      def spread(values)
        sorted = values.sort
        [sorted.first, sorted[sorted.size / 2], sorted.last]
      end

      # "1.20 us / 1.31 us / 1.90 us"
      def spread_text(values, per: 1)
        spread(values).map { |v| Report.duration(v / per) }.join(" / ")
      end
    end
  end
end
