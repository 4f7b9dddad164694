# frozen_string_literal: true

module SchemaFence
  # Shows a finalize's progress while it runs (`rake schema_fence:finalize[...]`): on a terminal
  # one line redrawn in place; otherwise (a log, a pipe) a line every +every+ seconds, so a long
  # finalize is never silent.
  #
  #   progress = SchemaFence::FinalizeProgress.new("ci_3")
  #   SchemaFence::Operations.finalize("ci_3") { |migration| progress.update(migration) }
  #   progress.finish
  class FinalizeProgress
    # @param id [String] the migration's id, as status lists it
    # @param io [IO]
    # @param every [Numeric] seconds between lines when +io+ is not a terminal
    def initialize(id, io: $stdout, every: 5)
      @id = id
      @io = io
      @every = every
      @tty = io.respond_to?(:tty?) && io.tty?
      @started = now
      @printed_at = nil
      @drawn = false
    end

    # @param migration [Migration] as {Worker#finish} yields it
    def update(migration)
      return if !@tty && @printed_at && now - @printed_at < @every

      @printed_at = now
      text = line(migration)
      @tty ? @io.print("\r\e[2K#{text}") : @io.puts(text)
      @io.flush
      @drawn = true
    end

    # Ends the redrawn line, so what follows starts on a line of its own.
    def finish
      @io.puts if @tty && @drawn
      @drawn = false
    end

    private

    def line(migration)
      bar = Status::TextRenderer.bar(migration.progress)
      "finalizing #{@id}: #{bar}, #{migration.jobs_succeeded} batches done, " \
        "#{Status::TextRenderer.duration((now - @started).ceil.clamp(1..))} so far"
    end

    def now
      Process.clock_gettime(Process::CLOCK_MONOTONIC)
    end
  end
end
