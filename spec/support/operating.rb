# frozen_string_literal: true

require "json"
require "rake"
require "stringio"

# For the specs of status and the rake tasks: databases configured as an app would
# (SchemaFence.configure { |c| c.database(...) }), undone after each example, and rake tasks run
# in-process in a fresh Rake::Application that loads the task file as a plain Rakefile would.
module Operating
  # What a rake task printed, and its exit status (0 unless it aborted).
  Run = Struct.new(:out, :err, :exit_status, keyword_init: true) do
    def json
      JSON.parse(out)
    end
  end

  module_function

  # @param urls [Hash] database name => URL
  def configure(**urls)
    SchemaFence.configure do |c|
      urls.each { |name, url| c.database(name, url:) }
    end
  end

  def reset
    SchemaFence.configuration.databases.clear
  end

  # Runs "schema_fence:pause[main_1]" (with +env+ set for the run) and returns a {Run}.
  def rake(task, env: {})
    app = Rake::Application.new
    previous_app = Rake.application
    Rake.application = app
    load "schema_fence/tasks/schema_fence.rake"
    with_env(env) { capture { app.invoke_task(task) } }
  ensure
    Rake.application = previous_app
  end

  def capture
    out = StringIO.new
    err = StringIO.new
    stdout = $stdout
    stderr = $stderr
    $stdout = out
    $stderr = err
    status = 0
    begin
      yield
    rescue SystemExit => e
      status = e.status
    end
    Run.new(out: out.string, err: err.string, exit_status: status)
  ensure
    $stdout = stdout
    $stderr = stderr
  end

  def with_env(env)
    saved = env.keys.to_h { |k| [k, ENV.fetch(k, nil)] }
    env.each { |k, v| ENV[k] = v }
    yield
  ensure
    saved.each { |k, v| ENV[k] = v }
  end

  # Gives the succeeded jobs of a migration finish times +step+ seconds apart (and started
  # +took+ seconds before), the first one +ago+ seconds plus a step before now, so that rates
  # are known.
  def space_finishes(url, migration_id, step:, took:, ago: 3600)
    PG.connect(url) do |c|
      c.exec_params(<<~SQL, [migration_id, step, took, ago])
        UPDATE batched_background_migration_jobs j
        SET finished_at = t.base + make_interval(secs => t.n * $2::float8),
            started_at = t.base + make_interval(secs => t.n * $2::float8 - $3::float8)
        FROM (SELECT id, row_number() OVER (ORDER BY id) AS n, now() - make_interval(secs => $4::float8) AS base
              FROM batched_background_migration_jobs
              WHERE batched_background_migration_id = $1 AND status = 3) t
        WHERE j.id = t.id
      SQL
    end
  end
end
