# frozen_string_literal: true

require "io/console"
require "ruby-progressbar"
require "ruby-progressbar/outputs/null"
require_relative "split_scenario"

# The progress of every migration on every database. On a terminal it is redrawn in place, the
# cursor moving up over the board's own lines only (never over what was printed before it), each
# line cut to the terminal's width so none wraps; elsewhere (a pipe, a log) it prints plain lines
# every few seconds. Before the split the replica's ci rows are the replica's copy of main's
# progress, and say so.
class ProgressBoard
  # Before the split main runs every migration; afterwards each database runs what it owns.
  KEYS = (SplitScenario::TABLES.keys.map { |t| ["main", t] } +
          SplitScenario.owned.select { |db, _| db == "ci" }).freeze
  # Seconds between plain drawings when the output is not a terminal.
  PLAIN_EVERY = 3

  def initialize(scenario, out: $stdout)
    @scenario = scenario
    @out = out
    @tty = out.tty?
    @drawn = 0
    @plain_at = nil
  end

  # Draws the board (+split+: whether ci is a database of its own yet; +force+: even when the
  # last plain drawing is recent).
  def draw(note = nil, split:, force: false)
    return if !force && spaced_out?

    @plain_at = Process.clock_gettime(Process::CLOCK_MONOTONIC)
    lines = rows(@scenario.progress, split)
    lines << "  #{note}" if note
    if @tty
      lines = lines.map { |l| l[0, width - 1] }
      @out.print("\e[#{@drawn}A\e[J") if @drawn.positive?
    end
    @out.puts(lines)
    @out.flush
    @drawn = lines.size
  end

  # Leaves the board where it is: what is printed next goes below it, and the next drawing
  # starts a new board under that.
  def leave
    @drawn = 0
    @plain_at = nil
  end

  private

  def rows(progress, split)
    KEYS.map do |database, table|
      fraction, status = progress[[database, table]]
      replica = database == "ci" && !split
      label = replica ? "ci (replica)" : database
      status = replica ? "copy of main's, replicated" : (status || "-")
      format("  %-12<db>s %-34<table>s %<bar>s %<status>s", db: label, table:, bar: bar(fraction || 0), status:)
    end
  end

  # "[=====     ]  42%", as wide as the terminal leaves room for.
  def bar(fraction)
    length = (width - 2 - 12 - 1 - 34 - 1 - 1 - 28).clamp(16, 60)
    thousandths = (fraction * 1000).round.clamp(0, 1000)
    bar = ProgressBar.create(total: 1000, starting_at: thousandths, length: length - 5,
                             output: ProgressBar::Outputs::Null).to_s("[%B]")
    format("%<bar>s %<percent>3d%%", bar:, percent: thousandths / 10)
  end

  def width
    @tty ? (@out.winsize[1].nonzero? || 100) : 120
  rescue StandardError
    100
  end

  # Plain output draws every PLAIN_EVERY seconds only.
  def spaced_out?
    !@tty && @plain_at && elapsed(@plain_at) < PLAIN_EVERY
  end

  def elapsed(since)
    Process.clock_gettime(Process::CLOCK_MONOTONIC) - since
  end
end
