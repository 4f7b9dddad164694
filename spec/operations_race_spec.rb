# frozen_string_literal: true

# An operator steering a migration while workers run it: pause, resume, retry_failed and finalize
# each change the status in one conditional statement, so a status a runner has just written
# (finished, failed) is never overwritten, and the batches are neither lost nor doubled.
RSpec.describe SchemaFence::Operations, :postgres do
  rows = 4_000
  # One batch in four fails (the statement divides by zero), so batches are retried, some use
  # up their attempts and the migration fails: retry_failed has work to race for.
  flaky_job = "UPDATE ci_builds SET done = done + 1 WHERE id BETWEEN $1 AND $2 " \
              "AND (SELECT 1 / (random() >= 0.25)::int) = 1"
  codes = { paused: 0, active: 1, finished: 3, failed: 4, finalizing: 5, finalized: 6 }.freeze

  # Every status change of the migrations, with who made it (the application_name of the
  # connection: the operator's store calls, or a runner).
  let(:status_log) { <<~SQL }
    CREATE TABLE race_status_log (
      seq bigserial PRIMARY KEY, old_status smallint, new_status smallint,
      app text DEFAULT current_setting('application_name'));
    CREATE FUNCTION race_log_status() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
      INSERT INTO race_status_log (old_status, new_status) VALUES (OLD.status, NEW.status);
      RETURN NEW;
    END $$;
    CREATE TRIGGER race_log_status AFTER UPDATE OF status ON batched_background_migrations
      FOR EACH ROW WHEN (OLD.status IS DISTINCT FROM NEW.status) EXECUTE FUNCTION race_log_status();
  SQL

  before do
    Batches.configure
    SchemaFence.sql_job("RaceFlakyIncrement", flaky_job)
  end

  after { Operating.reset }

  let(:url) { Batches.database("ops_race", name: "ci", serves: %w[ci], rows:) }
  let(:id) { Batches.queue(url, "RaceFlakyIncrement", "ci_builds", :gitlab_ci, batch_size: 20, sub_batch_size: 20) }

  def status_id
    "ci_#{id}"
  end

  def running_workers(stop)
    Array.new(3) do
      Thread.new do
        worker = SchemaFence::Worker.new(database: :ci, url:)
        until stop.closed?
          outcome = worker.run_once
          sleep 0.01 if %i[nothing idle].include?(outcome.status)
        end
      end
    end
  end

  # One steering call on the migration, as `rake schema_fence:<op>[ci_N]` makes it: the status it
  # read, and what it reported (a refusal when the status did not allow it or changed meanwhile).
  def steer(operation, finalize_timeout: 2)
    collected = SchemaFence::Status.collect
    seen = collected.find(status_id).status
    options = { status: collected }
    options[:timeout] = finalize_timeout if operation == :finalize
    changed = begin
      SchemaFence::Operations.public_send(operation, status_id, **options)
      true
    rescue SchemaFence::MigrationStateError
      false
    end
    { operation:, seen:, changed: }
  end

  def log
    PG.connect(url) do |c|
      c.exec("SELECT old_status, new_status, app FROM race_status_log ORDER BY seq").values
       .map { |old, new, app| [Integer(old), Integer(new), app.split("/").last] }
    end
  end

  def overlapping_succeeded_ranges
    PG.connect(url) do |c|
      c.exec_params(<<~SQL, [id]).getvalue(0, 0).to_i
        SELECT count(*) FROM batched_background_migration_jobs a
        JOIN batched_background_migration_jobs b ON a.batched_background_migration_id = b.batched_background_migration_id
          AND a.id < b.id AND a.min_value <= b.max_value AND b.min_value <= a.max_value
        WHERE a.batched_background_migration_id = $1 AND a.status = 3 AND b.status = 3
      SQL
    end
  end

  it "never overwrites a runner's status, and every key is processed once" do
    Operating.configure(ci: url)
    PG.connect(url) { |c| c.exec(status_log) }
    id
    stop = Queue.new
    workers = running_workers(stop)
    random = Random.new(RSpec.configuration.seed)
    calls = []
    deadline = Process.clock_gettime(Process::CLOCK_MONOTONIC) + 20
    while Process.clock_gettime(Process::CLOCK_MONOTONIC) < deadline
      # Finalize runs batches itself: briefly during the race, so the others keep racing.
      calls << steer(%i[pause pause resume resume retry_failed finalize].sample(random:), finalize_timeout: 0.2)
      break if Batches.status(url, id) == :finalized

      sleep random.rand(0.0..0.05)
    end
    # Then as an operator would to finish it: resume, retry what failed, finalize.
    30.times do
      case Batches.status(url, id)
      when :finalized then break
      when :paused then calls << steer(:resume)
      when :failed then calls << steer(:retry_failed)
      else calls << steer(:finalize)
      end
    end
    stop.close
    workers.each(&:join)

    expect(Batches.status(url, id)).to eq(:finalized)
    expect(Batches.done_counts(url, "ci_builds")).to eq([0, rows, 0])
    expect(overlapping_succeeded_ranges).to eq(0)

    # Each status change the operator made is one the operator asked for, from the status it
    # read: had a runner written another status in between, the change would have been refused.
    # (retry_failed reactivates a failed migration and leaves any other status as it was.)
    steering = { pause: :paused, resume: :active, finalize: :finalized }
    asked = calls.select { |c| c[:changed] }.map do |c|
      to = steering.fetch(c[:operation]) { c[:seen] == :failed ? :active : c[:seen] }
      [codes.fetch(c[:seen]), codes.fetch(to)]
    end
    asked = asked.reject { |from, to| from == to }
    operator_changes = log.select { |_, _, app| app == "store" }.map { |old, new, _| [old, new] }
    # finalize of an active migration: the runner finishes it (logged as the runner's), then
    # the operator moves finished to finalized.
    asked = asked.map { |from, to| to == codes[:finalized] ? [codes[:finished], to] : [from, to] }
    expect(operator_changes.tally).to eq(asked.tally)
    # The runners only ever finish or fail a migration that was running.
    runner_changes = log.reject { |_, _, app| app == "store" }.map { |old, new, _| [old, new] }.uniq
    expect(runner_changes - [[1, 3], [1, 4], [0, 3], [0, 4], [5, 3], [5, 4]]).to eq([])
    # The race happened: each operation changed the status at least once, some were refused.
    expect(calls.select { |c| c[:changed] }.map { |c| c[:operation] }.uniq)
      .to include(:pause, :resume, :finalize)
    expect(calls.count { |c| !c[:changed] }).to be > 0
  end
end
