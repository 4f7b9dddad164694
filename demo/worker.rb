# frozen_string_literal: true

# A worker process of the split scenario (demo/split_scenario.rb):
#   ruby demo/worker.rb URL DATABASE STOP_FILE
# It runs batches of the scenario's SQL jobs until STOP_FILE exists, idling while its database is
# shared or paused, and prints nothing but errors.

$LOAD_PATH.unshift File.expand_path("../lib", __dir__)
require "schema_fence"
require_relative "split_scenario"

url, database, stop_file = ARGV
SplitScenario.configure_schema_fence
SchemaFence.configure do |c|
  c.lease = 30
  c.database(database, url:)
end
SplitScenario.register_jobs

worker = SchemaFence::Worker.for(database)
until File.exist?(stop_file)
  outcome = begin
    worker.run_once
  rescue SchemaFence::ConnectionLostError, SchemaFence::DatabaseError => e
    warn "#{database} worker #{Process.pid}: #{e.message}; retrying"
    sleep 0.1
    next
  end
  warn "#{database} worker: batch failed: #{outcome.error.message}" if outcome.status == :failed
  sleep 0.02 unless outcome.status == :ran
end
