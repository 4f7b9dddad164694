# frozen_string_literal: true

require "pg"
require_relative "spread"

module SchemaFence
  module Bench
    # The backfill benches' rounds: each round updates two tables of +rows+ rows, one with one
    # unbatched UPDATE and one with a SQL job run to its end by a runner, then swaps which side
    # runs first (the second statement of a round finds a warmer cache and a busier
    # checkpointer), and checks every row was updated exactly once.
    class BackfillRounds
      attr_reader :baseline, :ours

      # Creates the two id-keyed tables of +rows+ rows both id-batched backfill benches update
      # (fillfactor 50: every round's update stays on its page, HOT, as GitLab's backfills do).
      def self.create_id_tables(url, tables, rows)
        PG.connect(url) do |c|
          tables.each do |table|
            c.exec("CREATE TABLE #{c.quote_ident(table)} (id bigint PRIMARY KEY, done int NOT NULL DEFAULT 0) " \
                   "WITH (fillfactor = 50); " \
                   "INSERT INTO #{c.quote_ident(table)} (id) SELECT generate_series(1, #{Integer(rows)})")
          end
        end
      end

      # @param tables [Array<String>] two tables of +rows+ rows with a +done+ counter
      # @param drain [#call, nil] runs the queued migration of the table it is given to its end;
      #   by default a runner claims and runs SQL-job batches
      def initialize(url:, tables:, rows:, drain: nil)
        @url = url
        @tables = tables
        @rows = rows
        @drain = drain || method(:drain_sql_jobs)
        @baseline = Spread.new
        @ours = Spread.new
      end

      # Runs +rounds+ rounds; the block queues the round's migration of the table it is given.
      # @return [Float] the share of the medians, ours over the unbatched UPDATE's
      def run(rounds, &)
        (1..rounds).each do |round|
          vacuum
          # Odd rounds: the unbatched UPDATE first, on the first table; even rounds: the job first.
          unbatched_table, job_table = round.odd? ? @tables : @tables.reverse
          sides = { baseline: -> { unbatched(unbatched_table) }, ours: -> { jobs(job_table, round, &) } }
          order = round.odd? ? %i[baseline ours] : %i[ours baseline]
          order.each { |side| (side == :baseline ? baseline : ours) << (@rows / sides[side].call) }
          raise "round #{round}: a row was not updated exactly once" unless done_everywhere?(round)
        end
        ours.median / baseline.median
      end

      # The verdict line: both sides' rows per second and the share against the budget (85%, the
      # SQL jobs').
      # @return [Boolean] whether the budget was met
      def verdict(label, share, budget: 0.85)
        met = share >= budget
        rate = ->(v) { "#{v.round} rows/s" }
        puts format("%<label>s of %<rows>d rows: unbatched UPDATE %<b>s | schema_fence %<o>s | " \
                    "%<share>.0f%% of the unbatched rows/s (medians) | budget >= %<budget>.0f%% | %<status>s",
                    label:, rows: @rows, b: baseline.to_s(rate), o: ours.to_s(rate), share: share * 100,
                    budget: budget * 100, status: met ? "PASS" : "MISSED")
        met
      end

      private

      def now = Process.clock_gettime(Process::CLOCK_MONOTONIC)

      def vacuum
        PG.connect(@url) { |c| @tables.each { |t| c.exec("VACUUM ANALYZE #{t}") } }
      end

      def unbatched(table)
        PG.connect(@url) do |c|
          started = now
          c.exec("UPDATE #{table} SET done = done + 1")
          now - started
        end
      end

      def jobs(table, round)
        yield table, round
        started = now
        @drain.call(table)
        elapsed = now - started
        check_finished(table, round)
        elapsed
      end

      # A drain ends when a claim finds nothing: that must be because the migration finished.
      def check_finished(table, round)
        PG.connect(@url) do |c|
          left = c.exec_params("SELECT status, schema_fence_hold_reason FROM batched_background_migrations " \
                               "WHERE table_name = $1 AND status <> 3", [table])
          next if left.ntuples.zero?

          raise "round #{round}: the migration of #{table} stopped before its end (status " \
                "#{left.getvalue(0, 0)}, hold reason: #{left.getvalue(0, 1).inspect})"
        end
      end

      # The health check is off: it measures the database, not the batching, and the WAL rate of
      # the unbatched UPDATE right before would put the job's migration on hold.
      # BENCH_WALK_AHEAD=0 turns the walk ahead off, for the figure without it.
      def drain_sql_jobs(table)
        runner = SchemaFence::Runner.new(url: @url, database: "ci", health: { enabled: false },
                                         walk_ahead: ENV.fetch("BENCH_WALK_AHEAD", "1") != "0")
        statement = SchemaFence::SqlJobs["Backfill#{table}"]
        while (batch = runner.claim_next).is_a?(SchemaFence::Batch)
          runner.complete(batch, runner.run_sql_batch(batch, statement))
        end
      end

      def done_everywhere?(round)
        PG.connect(@url) do |c|
          @tables.all? do |table|
            c.exec_params("SELECT count(*) FROM #{table} WHERE done <> $1", [Integer(round)]).getvalue(0, 0).to_i.zero?
          end
        end
      end
    end
  end
end
