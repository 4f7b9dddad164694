# frozen_string_literal: true

# `bin/demo`: the split of ci out of main on throwaway clusters, with workers running through
# the cutover; progress per migration per database, each cutover step with its duration, the
# pause window, and a verdict computed from the data.

require "terminal-table"
require_relative "split_scenario"
require_relative "progress_board"

def elapsed_since(started)
  Process.clock_gettime(Process::CLOCK_MONOTONIC) - started
end

def watch(board, seconds_between:, note:, split:)
  loop do
    board.draw(note.call, split:)
    break if yield

    sleep seconds_between
  end
  board.draw(note.call, split:, force: true) # the final state, even where drawings are spaced out
  board.leave
end

rows = Integer(ENV.fetch("DEMO_ROWS", "200000"))
fraction = Float(ENV.fetch("DEMO_CUTOVER_AT", "0.4"))
started = Process.clock_gettime(Process::CLOCK_MONOTONIC)
scenario = SplitScenario.new(rows:)
interrupted = false
trap("INT") { interrupted = true }

begin
  tables = SplitScenario::TABLES.size
  puts "Starting a source cluster (main serving main, ci and sec) with #{tables} tables of #{rows} rows, " \
       "#{tables} migrations queued (SQL and Ruby jobs), and a streaming replica..."
  scenario.setup
  scenario.start_workers
  scenario.start_writer
  puts format("Ready in %.1fs. Two worker processes, each serving main and sec " \
              "(on the source) and ci (on the replica, idle until the split); an application writing a ci " \
              "and a sec table.\n\n", elapsed_since(started))
  board = ProgressBoard.new(scenario)
  watch(board, seconds_between: 0.5, split: false,
               note: -> { "before the cutover (cutover at #{(fraction * 100).round}%)" }) do
    raise Interrupt if interrupted

    SplitScenario::TABLES.each_key.all? { |t| (scenario.progress[["main", t]]&.first || 0) >= fraction }
  end

  puts "\nCutover:"
  scenario.cutover do |o|
    puts format("  %-12<step>s %-16<db>s %8.3<took>fs  %<detail>s", step: o.step, db: o.database, took: o.duration,
                                                                    detail: o.detail)
  end
  windows = scenario.windows
  puts format("  claim pause: %<pause>.3fs (pause to resume); write window of the moving tables: %<write>.3fs " \
              "(fence to stamp; the application's ci connection is re-pointed now)\n\n",
              pause: windows.claim_pause, write: windows.write)

  watch(board, seconds_between: 0.5, split: true, note: -> { "after the cutover" }) do
    raise Interrupt if interrupted

    scenario.finished?
  end
  scenario.stop_workers

  stale = scenario.stale
  scenario.stale(delete: true)
  missed, _once, twice = scenario.owned_counts
  wrong = scenario.batches_on_wrong_database
  writes = scenario.application_writes
  lost = writes[:ci_lost] + writes[:ci_acknowledged_on_main_and_absent_on_ci] + writes[:sec_lost]
  locks = scenario.lock_writes_fired
  verdict = [
    ["rows processed (main: main's, sec's and shared tables; ci: ci's and shared)",
     (SplitScenario.owned.size * rows) - missed],
    ["rows never processed", missed],
    ["rows processed twice", twice],
    ["batches on the wrong database", wrong],
    ["lock-writes refusals met by a batch", locks],
    ["stale rows cleaned (main, ci)", "#{stale['main'].size}, #{stale['ci'].size}"],
    ["application writes acknowledged (ci table, sec table)", "#{writes[:ci_acknowledged]}, #{writes[:sec_acknowledged]}"],
    ["application writes lost", lost],
    ["ci writes refused by the fence and retried", writes[:fence_refusals]],
    ["sec writes refused", writes[:sec_refused]],
    ["write window of the moving tables", format("%.3fs", windows.write)]
  ]
  puts "\n#{Terminal::Table.new(title: 'Verdict', rows: verdict)}"
  ok = missed.zero? && twice.zero? && wrong.zero? && locks.zero? && lost.zero? && writes[:sec_refused].zero?
  puts format("\n%<verdict>s in %<took>.1fs", verdict: ok ? "PASS: no migration missed, duplicated or misplaced" : "FAIL",
                                              took: elapsed_since(started))
  exit(ok ? 0 : 1)
rescue Interrupt
  warn "\nInterrupted: stopping workers and removing the clusters."
  exit 130
ensure
  scenario.teardown
end
