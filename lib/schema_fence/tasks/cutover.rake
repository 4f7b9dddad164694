# frozen_string_literal: true

# The cutover and the cleanup, for an app's Rakefile (the Railtie loads this file):
#
#   SOURCE_URL=postgres://main... TARGET_URL=postgres://replica... rake schema_fence:cutover:plan
#   ... rake schema_fence:cutover:execute   # PROMOTE=external waits for Patroni instead of pg_promote()
#   ... rake schema_fence:cutover:rollback  # at any time; after the promotion it merges back (REVERSIBLE=0 refuses it)
#   rake schema_fence:lock_writes           # lays the write locks again (new tables of locked schemas)
#   rake schema_fence:cleanup               # DELETE=1 deletes the stale rows it lists
#
# SOURCE / TARGET name the logical databases (default main / ci); the URLs default to the
# databases configured with SchemaFence.configure { |c| c.database(...) }.

require "schema_fence"

module SchemaFence
  # Helpers of the cutover rake tasks.
  module CutoverTasks
    module_function

    def cutover
      source = ENV.fetch("SOURCE", "main")
      target = ENV.fetch("TARGET", "ci")
      Cutover.new(source_url: url("SOURCE_URL", source), target_url: url("TARGET_URL", target),
                  source:, target:, promote: ENV["PROMOTE"] != "external",
                  drain_timeout: ENV.fetch("DRAIN_TIMEOUT", 60), catch_up_timeout: ENV.fetch("CATCH_UP_TIMEOUT", 60),
                  promote_timeout: ENV.fetch("PROMOTE_TIMEOUT", 60), reversible: ENV["REVERSIBLE"] != "0")
    end

    def url(variable, database)
      ENV[variable] || configured_url(database) ||
        abort("schema_fence: set #{variable} (or configure the #{database} database in SchemaFence.configure)")
    end

    def configured_url(database)
      config = SchemaFence.configuration.databases[database.to_s]
      return unless config

      config[:url] || Connection.url_for(config[:connection_class])
    end
  end
end

namespace :schema_fence do
  # Loads the Rails environment when there is one (the same task as in schema_fence.rake; a
  # task defined twice runs once per invocation).
  task :environment do
    Rake::Task["environment"].invoke if Rake::Task.task_defined?("environment")
  end

  namespace :cutover do
    desc "List every cutover step with what it will do on which database; changes nothing"
    task plan: "schema_fence:environment" do
      SchemaFence::CutoverTasks.cutover.plan.each_with_index do |step, i|
        puts format("%<n>d. %-12<step>s %-24<database>s %<action>s%<done>s", n: i + 1, step: step.step,
                                                                             database: step.database, action: step.action,
                                                                             done: step.done ? "  [done]" : "")
      end
    rescue SchemaFence::Error => e
      abort "schema_fence: #{e.message}"
    end

    desc "Run the cutover (resumes after the last finished step when run again)"
    task execute: "schema_fence:environment" do
      started = Process.clock_gettime(Process::CLOCK_MONOTONIC)
      cutover = SchemaFence::CutoverTasks.cutover
      cutover.execute do |o|
        puts format("%-12<step>s %-24<database>s %8<took>s  %<detail>s", step: o.step, database: o.database,
                                                                         took: o.skipped ? "done" : format("%.3fs", o.duration),
                                                                         detail: o.detail)
      end
      windows = cutover.windows
      puts format("cutover finished in %<took>.3fs; claim pause %<pause>.3fs, write window of the moving tables " \
                  "%<write>.3fs", took: Process.clock_gettime(Process::CLOCK_MONOTONIC) - started,
                                  pause: windows.claim_pause || 0, write: windows.write || 0)
    rescue SchemaFence::Error => e
      abort "schema_fence: #{e.message}"
    end

    desc "Undo the cutover: before the promotion lift the fence and the pause; after it, merge back and retire the target"
    task rollback: "schema_fence:environment" do
      outcomes = SchemaFence::CutoverTasks.cutover.rollback do |o|
        puts format("%-17<step>s %-24<database>s %8<took>s  %<detail>s", step: o.step, database: o.database,
                                                                         took: o.skipped ? "done" : format("%.3fs", o.duration),
                                                                         detail: o.detail)
      end
      puts(outcomes.empty? ? "cutover rolled back: writes and claims resumed on the source" : "rollback finished")
    rescue SchemaFence::Error => e
      abort "schema_fence: #{e.message}"
    end
  end

  desc "Lay the write locks of every configured database again (after creating a table of a locked gitlab_schema)"
  task lock_writes: :environment do
    SchemaFence.configuration.databases.each_key do |name|
      tables = SchemaFence::Cutover.lock_writes(SchemaFence::CutoverTasks.configured_url(name))
      puts "#{name}: #{tables.size} table(s) write-locked"
    end
  rescue SchemaFence::Error => e
    abort "schema_fence: #{e.message}"
  end

  desc "List the stale tracking rows of every configured database (DELETE=1 deletes them with their jobs)"
  task cleanup: :environment do
    delete = ENV["DELETE"] == "1"
    SchemaFence.configuration.databases.each_key do |name|
      rows = SchemaFence::Cutover.cleanup(SchemaFence::CutoverTasks.configured_url(name), delete:)
      puts "#{name}: #{rows.size} stale row(s)#{delete ? ' deleted' : ''}"
      rows.each { |r| puts "  #{name}_#{r.id} #{r.job_class_name} on #{r.table_name} (#{r.gitlab_schema}), #{r.jobs} jobs" }
    end
  rescue SchemaFence::Error => e
    abort "schema_fence: #{e.message}"
  end
end
