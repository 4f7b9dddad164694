# frozen_string_literal: true

require "pty"

RSpec.describe SchemaFence::FinalizeProgress do
  def migration(progress, done)
    SchemaFence::Migration.new(id: 3, progress:, jobs_succeeded: done)
  end

  it "redraws one line in place on a terminal and ends it when done" do
    PTY.open do |terminal, tty|
      progress = described_class.new("ci_3", io: tty)
      progress.update(migration(0.25, 5))
      progress.update(migration(0.5, 10))
      progress.finish
      tty.close
      text = +""
      begin
        loop { text << terminal.readpartial(10_000) }
      rescue EOFError, Errno::EIO
        nil # the terminal's other end is closed: all is read
      end
      expect(text.scan("\r\e[2K").size).to eq(2)
      first, second = text.split("\r\e[2K").reject(&:empty?)
      expect(first).to match(/\Afinalizing ci_3: \[=+ +\] +25%, 5 batches done, 1s so far\z/)
      expect(second).to match(/\Afinalizing ci_3: \[=+ +\] +50%, 10 batches done, 1s so far\r\n\z/)
    end
  end

  it "prints plain lines, spaced out, when not on a terminal" do
    out = StringIO.new
    progress = described_class.new("ci_3", io: out, every: 0.2)
    progress.update(migration(0.1, 1))
    progress.update(migration(0.2, 2)) # within 0.2 s of the last line: not printed
    sleep 0.25
    progress.update(migration(0.3, 3))
    progress.finish
    expect(out.string.lines.map { |l| l[/\d+%, \d+ batches/] }).to eq(["10%, 1 batches", "30%, 3 batches"])
    expect(out.string).not_to include("\r")
  end
end
