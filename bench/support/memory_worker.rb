# frozen_string_literal: true

# The worker process of bench/memory_bench.rb: one SchemaFence::Worker of main running batches
# one after another (Ruby jobs with their keys written into the SQL, so that every statement is
# a new text to the guard, and SQL jobs), printing "<batches> <RSS in KiB>" at each checkpoint.
# The two migrations take turns (run_migration_batch), so every path runs before the first
# checkpoint. Arguments: the database URL, the two migration ids, then the checkpoints.

require "active_record"
require "schema_fence"

FIXTURES = File.expand_path("../../../shared/fixtures/gitlab", __dir__)

SchemaFence.configure do |c|
  c.dictionary_paths = [File.join(FIXTURES, "gitlab_schemas.yml")]
  c.topology_path = File.join(FIXTURES, "database_connections")
end

class MemoryBenchJob < SchemaFence::BatchedMigrationJob
  def perform
    each_sub_batch { |sub_batch| sub_batch.update_all("state_id = state_id + 1") }
  end
end

SchemaFence.sql_job("MemoryBenchSql", "UPDATE projects SET state_id = state_id + 1 WHERE id BETWEEN $1 AND $2")

def rss_kib
  File.read("/proc/self/status")[/^VmRSS:\s+(\d+)/, 1].to_i
end

url = ARGV.fetch(0)
migrations = ARGV[1, 2].map { |a| Integer(a) }
checkpoints = ARGV.drop(3).map { |a| Integer(a) }
worker = SchemaFence::Worker.new(database: :main, url:)
batches = 0
while batches < checkpoints.last
  outcome = worker.run_migration_batch(migrations[batches % 2])
  raise "batch #{batches + 1}: #{outcome.inspect}" unless outcome.status == :ran

  batches += 1
  next unless checkpoints.include?(batches)

  GC.start
  guard = worker.instance_variable_get(:@guards).values.first
  puts "#{batches} #{rss_kib} #{guard&.cache_size.to_i} #{guard&.shape_cache_size.to_i}"
  $stdout.flush
end
