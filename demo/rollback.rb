# frozen_string_literal: true

# `bin/demo rollback`: the split of ci out of main, work on both sides (workers and an application
# writing), then the rollback after the promotion; each step with its duration and a verdict
# computed from the data.

require "terminal-table"
require_relative "split_scenario"

rows = Integer(ENV.fetch("DEMO_ROWS", "40000"))
started = Process.clock_gettime(Process::CLOCK_MONOTONIC)
scenario = SplitScenario.new(rows:, batch_size: 2_000, sub_batch_size: 500, pause_ms: 0, interval: 1)
everything_on_main = SplitScenario::TABLES.keys.map { |table| ["main", table] }
trap("INT") { raise Interrupt }

def step_line(outcome)
  format("  %-17<step>s %-16<db>s %8.3<took>fs  %<detail>s", step: outcome.step, db: outcome.database,
                                                             took: outcome.duration, detail: outcome.detail)
end

def ci_progress(scenario)
  (scenario.progress[%w[ci ci_builds]]&.first || 0).round(2)
end

begin
  puts "Starting a source cluster (main serving main, ci and sec) with #{SplitScenario::TABLES.size} tables " \
       "of #{rows} rows and a migration on each, a streaming replica, two worker processes and an application..."
  scenario.setup
  scenario.start_workers
  scenario.start_writer
  scenario.wait_for_progress(0.25)
  puts "\nCutover at 25% (reversible: the new ci's writes replicate back to main):"
  scenario.cutover { |o| puts step_line(o) }
  scenario.wait_until(timeout: 120, what: "ci's progress 0.6") { ci_progress(scenario) >= 0.6 }
  writes = scenario.application_writes
  puts "\nBoth sides worked: ci_builds is #{(ci_progress(scenario) * 100).round}% done on the new ci; the " \
       "application wrote #{writes[:ci_acknowledged]} ci rows (on main, then on the new ci)."
  puts "\nRollback:"
  scenario.rollback { |o| puts step_line(o) }
  scenario.wait_until_finished(owned: everything_on_main)
  sleep 0.3
  scenario.stop_workers

  counts = everything_on_main.map { |_, table| scenario.counts(scenario.source_url, table) }.transpose.map(&:sum)
  writes = scenario.application_writes(ci_owner: scenario.source_url)
  retired = begin
    SchemaFence::Worker.new(database: :ci, url: scenario.target_url).run_once
    "no"
  rescue SchemaFence::MisroutedConnectionError
    "yes"
  end
  verdict = [
    ["rows processed on main, the new ci's work included", counts[1]],
    ["rows never processed", counts[0]],
    ["rows processed twice", counts[2]],
    ["application writes acknowledged (ci, sec)", "#{writes[:ci_acknowledged]}, #{writes[:sec_acknowledged]}"],
    ["application writes lost", writes[:ci_lost] + writes[:sec_lost]],
    ["the retired target refuses a ci worker", retired]
  ]
  puts "\n#{Terminal::Table.new(title: 'Verdict', rows: verdict)}"
  ok = counts[0].zero? && counts[2].zero? && (writes[:ci_lost] + writes[:sec_lost]).zero? && retired == "yes"
  puts format("\n%<verdict>s in %<took>.1fs", verdict: ok ? "PASS: the split is undone, nothing lost, nothing run twice" : "FAIL",
                                              took: Process.clock_gettime(Process::CLOCK_MONOTONIC) - started)
  exit(ok ? 0 : 1)
rescue Interrupt
  warn "\nInterrupted: stopping workers and removing the clusters."
  exit 130
ensure
  scenario.teardown
end
