# frozen_string_literal: true

module SchemaFence
  module Bench
    # One line per measurement, the same in every bench:
    #   name | baseline | schema_fence | ratio | budget | PASS/MISSED
    module Report
      module_function

      # Seconds per run of the block: the median of +runs+ timed runs after +warmup+ untimed ones.
      def median_seconds(runs:, warmup: 2, &block)
        warmup.times(&block)
        times = Array.new(runs) do
          start = Process.clock_gettime(Process::CLOCK_MONOTONIC)
          yield
          Process.clock_gettime(Process::CLOCK_MONOTONIC) - start
        end
        times.sort[times.size / 2]
      end

      def duration(seconds)
        return format("%.1f ns", seconds * 1e9) if seconds < 1e-6
        return format("%.2f us", seconds * 1e6) if seconds < 1e-3
        return format("%.2f ms", seconds * 1e3) if seconds < 1

        format("%.2f s", seconds)
      end

      # Prints the row and returns true when +baseline+ / +ours+ (seconds per op) meets +budget+.
      def row(name, baseline:, ours:, budget:)
        ratio = baseline / ours
        met = ratio >= budget
        puts format("%<name>-44s baseline %<baseline>11s | schema_fence %<ours>11s | %<ratio>7.1fx | " \
                    "budget >= %<budget>gx | %<status>s",
                    name:, baseline: duration(baseline), ours: duration(ours), ratio:,
                    budget:, status: met ? "PASS" : "MISSED")
        met
      end

      def summary(bench, results)
        missed = results.count(false)
        puts "#{bench}: #{results.size - missed}/#{results.size} budgets met" \
             "#{missed.zero? ? '' : " (#{missed} MISSED)"}"
      end
    end
  end
end
