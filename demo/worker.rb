# frozen_string_literal: true

# A worker process of the split scenario (demo/split_scenario.rb), serving every database as a
# Sidekiq process of the app does:
#   ruby demo/worker.rb MAIN_URL CI_CONNECTION_FILE STOP_FILE
# It runs batches of the scenario's SQL and Ruby jobs until STOP_FILE exists, taking turns between
# main, ci and sec (sec shares main throughout, ci until the split: they idle there; all idle
# while paused); it prints only errors. The ci URL is read from CI_CONNECTION_FILE, which the
# operator re-points (after a rollback, at main): the worker is configured again, as on a deploy.

$LOAD_PATH.unshift File.expand_path("../lib", __dir__)
require "schema_fence"
require_relative "split_scenario"

main_url, ci_file, stop_file = ARGV
SplitScenario.configure_schema_fence
SplitScenario.register_jobs
ci_url = nil

until File.exist?(stop_file)
  if (current = File.read(ci_file)) != ci_url
    ci_url = current
    SchemaFence.configure do |c|
      c.lease = 30
      c.database(:main, url: main_url)
      c.database(:ci, url: ci_url)
      c.database(:sec, url: main_url)
    end
  end
  workers = %w[main ci sec].map { |database| SchemaFence::Worker.for(database) }
  ran = workers.map do |worker|
    outcome = worker.run_once
    warn "#{worker.database} worker: batch failed: #{outcome.error.message}" if outcome.status == :failed
    outcome.status == :ran
  rescue SchemaFence::MisroutedConnectionError => e
    warn "#{worker.database} worker #{Process.pid}: MisroutedConnectionError: #{e.message}"
    sleep 0.1
    false
  rescue SchemaFence::ConnectionLostError, SchemaFence::DatabaseError => e
    warn "#{worker.database} worker #{Process.pid}: #{e.message}; retrying"
    sleep 0.1
    false
  end
  sleep 0.02 unless ran.any?
end
