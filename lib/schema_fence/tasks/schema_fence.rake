# frozen_string_literal: true

# Status and steering of batched background migrations, for an app's Rakefile (the Railtie loads
# this file; elsewhere: `load "schema_fence/tasks/schema_fence.rake"` after configuring
# SchemaFence with its databases):
#
#   rake schema_fence:status                 # per database: identity, migrations, progress, rate, time left
#   rake schema_fence:status FORMAT=json     # the same as JSON, for scripts (or schema_fence:status[json])
#   rake schema_fence:pause[main_12]         # ids as schema_fence:status shows them
#   rake schema_fence:resume[main_12]
#   rake schema_fence:retry_failed[ci_3]     # failed batches back to pending, the migration back to active
#   rake schema_fence:finalize[ci_3]         # runs the remaining batches here, then marks it finalized
#   rake schema_fence:retag                  # rows whose tag differs from their table's gitlab_schema
#   APPLY=1 rake schema_fence:retag          # ... retagged, in one transaction per database
#   rake schema_fence:identity:adopt[ci,ci] URL=postgres://...   # a deliberate copy becomes ci serving ci
#
# Each refuses an unknown id (naming the known ones) and a stale row, exiting with status 1.

require "schema_fence"

namespace :schema_fence do
  # In a Rails app the tasks need the app loaded (its SchemaFence configuration and job classes).
  task :environment do
    Rake::Task["environment"].invoke if Rake::Task.task_defined?("environment")
  end

  desc "Show every database's identity and batched background migrations (FORMAT=json for JSON)"
  task :status, [:format] => :environment do |_task, args|
    status = SchemaFence::Status.collect
    format = args[:format] || ENV.fetch("FORMAT", "text")
    case format
    when "json" then puts JSON.pretty_generate(status.to_h)
    when "text" then puts status.to_text
    else abort "schema_fence: unknown FORMAT #{format.inspect}: use text or json"
    end
  rescue SchemaFence::Error => e
    abort "schema_fence: #{e.message}"
  end

  {
    pause: "Pause a batched background migration, e.g. schema_fence:pause[main_12]",
    resume: "Resume a paused batched background migration, e.g. schema_fence:resume[main_12]",
    retry_failed: "Put a migration's failed batches back to pending (attempts reset) and the migration back to active",
    finalize: "Run a migration's remaining batches now, then mark it finalized, e.g. schema_fence:finalize[ci_3]"
  }.each do |operation, description|
    desc description
    task operation, [:id] => :environment do |task, args|
      abort "schema_fence: give the migration's id, e.g. rake #{task.name}[main_12] (see rake schema_fence:status)" \
        unless args[:id]

      progress = SchemaFence::FinalizeProgress.new(args[:id])
      begin
        result = SchemaFence::Operations.public_send(operation, args[:id]) { |migration| progress.update(migration) }
      ensure
        progress.finish
      end
      puts result
    rescue SchemaFence::Error => e
      abort "schema_fence: #{e.message}"
    end
  end

  desc "List migrations whose gitlab_schema differs from their table's in the dictionary (APPLY=1 retags them)"
  task retag: :environment do
    apply = ENV["APPLY"] == "1"
    SchemaFence::Install.configured_urls.each do |name, url|
      report = SchemaFence::Install.retag(url)
      puts "#{name}: #{report.changes.size} row(s) to retag, #{report.unresolved.size} not resolvable"
      report.lines.each { |line| puts "  #{name}_#{line}" }
      next unless apply && !report.changes.empty?

      unless report.unresolved.empty?
        abort "schema_fence: #{name}: nothing retagged: add the tables listed to the dictionary (or delete their rows) first"
      end

      puts "#{name}: #{SchemaFence::Install.retag(url, apply: true).changes.size} row(s) retagged"
    end
  rescue SchemaFence::Error => e
    abort "schema_fence: #{e.message}"
  end

  namespace :transition_log do
    desc "Create the job transition log's coming monthly partitions and drop those past the retention " \
         "(config.transition_log_retain_months; run it from cron at least monthly)"
    task maintain: :environment do
      SchemaFence::Install.configured_urls.each do |name, url|
        done = SchemaFence::TransitionLog.maintain(url)
        changed = done.created + done.dropped
        puts "#{name}: #{done.created.size} partition(s) created, #{done.dropped.size} dropped" \
             "#{changed.empty? ? '' : " (#{changed.join(', ')})"}"
      end
    rescue SchemaFence::Error => e
      abort "schema_fence: #{e.message}"
    end
  end

  namespace :identity do
    desc "Adopt a deliberate copy of a database: adopt[name,serves...] with URL=, e.g. adopt[ci,ci]"
    task :adopt, [:name] => :environment do |_task, args|
      url = ENV.fetch("URL", "")
      abort "schema_fence: give the copy's URL=postgres://... and its name, e.g. adopt[ci,ci]" \
        if url.empty? || args[:name].nil?

      serves = args.extras.empty? ? [args[:name]] : args.extras
      identity = SchemaFence::Identity.adopt(url, name: args[:name], serves:)
      puts "adopted: #{identity.name} serving #{identity.serves.join(', ')} at epoch #{identity.epoch}"
    rescue SchemaFence::Error => e
      abort "schema_fence: #{e.message}"
    end
  end
end

namespace :schema_fence do
  namespace :identity do
    desc "Stamp the identity of each database whose loaded schema has none (run after db:schema:load " \
         "and db:structure:load by the Railtie; RAILS_ENV picks the databases)"
    task stamp: :environment do
      SchemaFence::IdentityStamp.stamp(Rails.env, out: $stdout)
    end
  end
end
