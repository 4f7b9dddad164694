# frozen_string_literal: true

require "rbconfig"

# The application of the split scenario (demo/split_scenario.rb): a process writing through the
# cutover (demo/app_writer.rb), re-pointed when the cutover returns, and the logs read afterwards.
module SplitApplication
  # The application: writes a ci table through its ci connection (the source until the cutover
  # returns and it is re-pointed) and a sec table through its sec connection (the source), and
  # logs every write the server acknowledged.
  def start_writer
    @stop_file ||= File.join(@dir, "stop")
    @ci_connection = File.join(@dir, "ci_connection")
    File.write(@ci_connection, @source_url)
    @acknowledged = File.join(@dir, "acknowledged")
    script = File.expand_path("app_writer.rb", __dir__)
    @pids << spawn(RbConfig.ruby, script, @ci_connection, @source_url, @acknowledged, @stop_file,
                   out: File::NULL, err: File.join(@dir, "writer.log"))
  end

  # What the operator does once the cutover (or its rollback) returned: point the application's
  # ci connection, and the workers', at the database that serves ci now.
  def repoint_ci(url = @target_url)
    [@ci_connection, @workers_ci_connection].compact.each do |file|
      File.write("#{file}.new", url)
      File.rename("#{file}.new", file)
    end
  end

  # The application writer's log: [kind, id or key, acknowledging URL] per acknowledged write, and
  # the refusals it retried.
  def writer_log
    acknowledged = File.exist?(@acknowledged.to_s) ? File.readlines(@acknowledged, chomp: true).map(&:split) : []
    refusals = File.exist?(File.join(@dir, "writer.log")) ? File.readlines(File.join(@dir, "writer.log")) : []
    [acknowledged, refusals]
  end

  # Lines of the worker processes' logs that match +pattern+.
  def worker_log_lines(pattern)
    Dir[File.join(@dir, "worker-*.log")].sum { |f| File.foreach(f).grep(pattern).size }
  end
end
