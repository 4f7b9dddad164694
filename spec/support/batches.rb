# frozen_string_literal: true

require "pg"

# Databases with tables to migrate and migrations queued, for the worker specs: each table has a
# `done` column that jobs increment, so every key's count of runs can be read back.
module Batches
  module_function

  # A fresh database with ci_builds and projects of +rows+ rows, installed as +name+ serving +serves+.
  def database(prefix, name:, serves:, rows: 100, on: nil)
    url = Clusters.fresh_database(prefix, on:)
    PG.connect(url) do |c|
      %w[ci_builds projects].each do |table|
        c.exec("CREATE TABLE #{table} (id bigint PRIMARY KEY, done int NOT NULL DEFAULT 0)")
        c.exec("INSERT INTO #{table} (id) SELECT generate_series(1, #{Integer(rows)})")
      end
    end
    SchemaFence::Install.up(url, name:, serves:)
    url
  end

  # Queues through the core on the URL (as a migration would on its connection).
  def queue(url, job_class_name, table, schema, batch_size: 50, sub_batch_size: 20, interval: 0)
    SchemaFence::Store.queue(url, job_class_name:, table_name: table, column_name: "id", restriction: schema,
                                  job_interval: interval, batch_size:, sub_batch_size:, pause_ms: 0).id
  end

  # [keys never done, done once, done more than once]
  def done_counts(url, table)
    PG.connect(url) do |c|
      c.exec("SELECT count(*) FILTER (WHERE done = 0), count(*) FILTER (WHERE done = 1), " \
             "count(*) FILTER (WHERE done > 1) FROM #{table}").values.first.map(&:to_i)
    end
  end

  # Writes the identity as the library's own stamp does (the identity's trigger rejects other
  # writes): +assignments+ is the SET list, e.g. "epoch = epoch + 1".
  def stamp!(url, assignments)
    PG.connect(url) do |c|
      c.exec("UPDATE public.schema_fence_identity SET #{assignments} " \
             "FROM (SELECT set_config('schema_fence.stamp', txid_current()::text, true)) AS stamp")
    end
  end

  def status(url, id)
    SchemaFence::Migrations.on(url).find_by_id(id)&.status
  end

  # Runs the worker until it finds nothing to do; returns the outcomes.
  def drain(worker, limit: 1_000)
    outcomes = []
    limit.times do
      outcome = worker.run_once
      break if outcome.status == :nothing || outcome.status == :idle

      outcomes << outcome
    end
    outcomes
  end

  def configure
    SchemaFence.configure do |c|
      c.dictionary_paths = [GitlabFixtures.path("gitlab_schemas.yml")]
      c.topology_path = GitlabFixtures.path("database_connections")
    end
  end
end

# Ruby jobs used by the worker specs.
class IncrementDone < SchemaFence::BatchedMigrationJob
  def perform
    each_sub_batch { |sub_batch| sub_batch.update_all("done = done + 1") }
  end
end

# A ci job that reaches for a main table: the guard must stop it.
class TouchProjects < SchemaFence::BatchedMigrationJob
  def perform
    connection.execute("UPDATE projects SET done = done + 100 WHERE id BETWEEN #{start_id} AND #{end_id}")
  end
end

# A job whose statement the server refuses.
class FailWithSqlError < SchemaFence::BatchedMigrationJob
  def perform
    connection.execute("SELECT 1 / 0 FROM ci_builds WHERE id BETWEEN #{start_id} AND #{end_id}")
  end
end

# A job that opens a transaction by hand and forgets to commit it.
class LeaveTransactionOpen < SchemaFence::BatchedMigrationJob
  def perform
    connection.raw_connection.exec("BEGIN")
    each_sub_batch { |sub_batch| sub_batch.update_all("done = done + 1") }
  end
end
