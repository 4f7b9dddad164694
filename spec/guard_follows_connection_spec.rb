# frozen_string_literal: true

require "pg"

# Ruby jobs that reach gitlab_main's projects from a ci batch by ways around ActiveRecord's
# execute on the job's own thread.
class TouchProjectsRaw < SchemaFence::BatchedMigrationJob
  def perform
    connection.raw_connection.exec_params("UPDATE projects SET done = done + 100 WHERE id BETWEEN $1 AND $2",
                                          [start_id, end_id])
  end
end

class TouchProjectsFromAThread < SchemaFence::BatchedMigrationJob
  def perform
    conn = connection
    Thread.new do
      Thread.current.report_on_exception = false
      conn.execute("UPDATE projects SET done = done + 100 WHERE id = #{start_id}")
    end.join
  end
end

class TouchProjectsFromAFiber < SchemaFence::BatchedMigrationJob
  def perform
    conn = connection
    Fiber.new { conn.execute("UPDATE projects SET done = done + 100 WHERE id = #{start_id}") }.resume
  end
end

class ExecutePreparedBefore < SchemaFence::BatchedMigrationJob
  def perform
    connection.raw_connection.exec_prepared("touch_projects_before", [start_id])
  end
end

class SetSearchPath < SchemaFence::BatchedMigrationJob
  def perform
    connection.execute("SET search_path = shadow, public")
  end
end

RSpec.describe "the statement guard follows the batch's connection", :postgres do
  before { Batches.configure }

  let(:url) { Batches.database("guard_follows", name: "ci", serves: %w[ci], rows: 50) }
  let(:worker) { SchemaFence::Worker.new(database: :ci, url:) }

  def run(job_class_name)
    Batches.queue(url, job_class_name, "ci_builds", :gitlab_ci, batch_size: 50)
    worker.run_once
  end

  {
    "TouchProjectsRaw" => "the raw PG::Connection's exec_params",
    "TouchProjectsFromAThread" => "another Thread on the job's connection",
    "TouchProjectsFromAFiber" => "a Fiber"
  }.each do |job, way|
    it "refuses a main table reached through #{way}, unsent" do
      outcome = run(job)
      expect(outcome.status).to eq(:failed)
      expect(outcome.error).to be_a(SchemaFence::CrossDatabaseAccessError)
      expect(outcome.error.message).to include('"projects"', "gitlab_main")
      expect(Batches.done_counts(url, "projects")).to eq([50, 0, 0])
    end
  end

  it "refuses executing a statement prepared before the batch, whose text the guard never saw" do
    raw = worker.send(:connection_class).connection_pool.then do |pool|
      pool.respond_to?(:lease_connection) ? pool.lease_connection : pool.connection
    end.raw_connection
    raw.prepare("touch_projects_before", "UPDATE projects SET done = done + 100 WHERE id = $1")
    outcome = run("ExecutePreparedBefore")
    expect(outcome.error).to be_a(SchemaFence::ForbiddenStatementError)
    expect(outcome.error.message).to include('"touch_projects_before" was prepared outside this batch')
    expect(Batches.done_counts(url, "projects")).to eq([50, 0, 0])
  end

  it "refuses a SET of search_path inside a batch" do
    outcome = run("SetSearchPath")
    expect(outcome.error).to be_a(SchemaFence::ForbiddenStatementError)
    expect(outcome.error.message).to include("SET or RESET of search_path")
  end

  it "leaves the connection unguarded after the batch" do
    run("IncrementDone")
    connection = worker.send(:connection_class).connection_pool.then do |pool|
      pool.respond_to?(:lease_connection) ? pool.lease_connection : pool.connection
    end
    expect(connection.select_value("SELECT count(*) FROM projects")).to eq(50)
    expect(connection.raw_connection.exec("SELECT 1 FROM projects LIMIT 1").ntuples).to eq(1)
  end
end
