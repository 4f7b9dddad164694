# frozen_string_literal: true

require "logger"
require "stringio"

RSpec.describe SchemaFence::Instrumentation, :postgres do
  before { Batches.configure }

  # The schema_fence events published while the block runs.
  def events_during
    seen = []
    subscriber = ActiveSupport::Notifications.subscribe(/\.schema_fence\z/) do |*args|
      seen << ActiveSupport::Notifications::Event.new(*args)
    end
    yield
    seen
  ensure
    ActiveSupport::Notifications.unsubscribe(subscriber)
  end

  def payloads(events, name)
    events.select { |e| e.name == "#{name}.schema_fence" }.map(&:payload)
  end

  def worker(url, database)
    SchemaFence::Worker.new(database:, url:)
  end

  describe "enqueue" do
    it "is published by queue_batched_background_migration with the tag and the row's id" do
      Dir.mktmpdir("schema_fence-app") do |dir|
        app = RailsApp.new(dir)
        url = Clusters.fresh_database("instr_enqueue")
        app.configure(main: url, ci: url, ci_database_tasks: false)
        app.migration("create_ci_builds", <<~RUBY)
          def up
            execute "CREATE TABLE ci_builds (id bigint PRIMARY KEY)"
            execute "INSERT INTO ci_builds SELECT generate_series(1, 10)"
          end
        RUBY
        app.migration("queue_backfill", <<~RUBY, restrict: :gitlab_ci)
          def up
            queue_batched_background_migration("BackfillCiBuilds", :ci_builds, :id, "x", job_interval: 60)
            queue_batched_background_migration("BackfillCiBuilds", :ci_builds, :id, "x", job_interval: 60)
          end
        RUBY
        events = events_during { app.migrate(:main) }
        id = app.rows(url).first.id
        expect(payloads(events, :enqueue)).to eq(
          [{ database: "main", job_class_name: "BackfillCiBuilds", table_name: "ci_builds", column_name: "id",
             job_arguments: ["x"], gitlab_schema: :gitlab_ci, outcome: :queued, id: },
           { database: "main", job_class_name: "BackfillCiBuilds", table_name: "ci_builds", column_name: "id",
             job_arguments: ["x"], gitlab_schema: :gitlab_ci, outcome: :already_queued, id: }]
        )
      end
    end
  end

  describe "batch events" do
    let(:url) { Batches.database("instr_batches", name: "ci", serves: %w[ci], rows: 100) }

    it "publishes fetch, batch_start and batch_finish for a batch that runs" do
      id = Batches.queue(url, "IncrementDone", "ci_builds", :gitlab_ci, batch_size: 60)
      events = events_during { worker(url, :ci).run_once }
      expect(events.map(&:name)).to eq(%w[fetch.schema_fence batch_start.schema_fence batch_finish.schema_fence])
      fetch = payloads(events, :fetch).first
      start = payloads(events, :batch_start).first
      finish = payloads(events, :batch_finish).first
      expect(fetch).to eq(database: "ci", migration_id: nil, result: :batch, migration_ids: nil, epoch: nil,
                          job_id: start[:job_id])
      expect(start).to include(database: "ci", migration_id: id, job_class_name: "IncrementDone",
                               table_name: "ci_builds", gitlab_schema: :gitlab_ci, min_value: 1, max_value: 60,
                               attempt: 1)
      expect(finish).to include(start)
      expect(finish).to include(completion: :recorded, metrics: include(:millis))
      expect(finish[:duration]).to be_a(Float).and(be >= 0)
    end

    it "publishes the scheduler's fetch with the migrations found and the epoch seen" do
      id = Batches.queue(url, "IncrementDone", "ci_builds", :gitlab_ci)
      events = events_during { worker(url, :ci).fetch }
      expect(payloads(events, :fetch)).to eq([{ database: "ci", migration_id: nil, result: :migrations,
                                                migration_ids: [id], epoch: 0, job_id: nil }])
    end

    it "publishes a fetch that found nothing, asked for one migration" do
      id = Batches.queue(url, "IncrementDone", "ci_builds", :gitlab_ci, batch_size: 100)
      w = worker(url, :ci)
      w.run_migration_batch(id)
      events = events_during { w.run_migration_batch(id) }
      expect(payloads(events, :fetch)).to eq([{ database: "ci", migration_id: id, result: :nothing,
                                                migration_ids: nil, epoch: nil, job_id: nil }])
    end

    it "publishes guard_violation, then batch_failure, for a statement reaching another database's table" do
      id = Batches.queue(url, "TouchProjects", "ci_builds", :gitlab_ci, batch_size: 100)
      events = events_during { worker(url, :ci).run_once }
      expect(events.map(&:name)).to eq(%w[fetch.schema_fence batch_start.schema_fence guard_violation.schema_fence
                                          batch_failure.schema_fence])
      violation = payloads(events, :guard_violation).first
      failure = payloads(events, :batch_failure).first
      expect(violation).to include(database: "ci", migration_id: id, job_class_name: "TouchProjects")
      expect(violation[:error_message]).to include("projects", "gitlab_main")
      expect(violation[:exception_object]).to be_a(SchemaFence::CrossDatabaseAccessError)
      expect(failure).to include(migration_id: id, error_class: "SchemaFence::CrossDatabaseAccessError",
                                 completion: :recorded, timed_out: false, attempt: 1)
    end

    it "publishes a refused fetch of a mis-pointed connection with the exception" do
      main_url = Batches.database("instr_misrouted", name: "main", serves: %w[main])
      events = events_during do
        expect { worker(main_url, :ci).run_once }.to raise_error(SchemaFence::MisroutedConnectionError)
      end
      fetch = payloads(events, :fetch).first
      expect(fetch[:exception].first).to eq("SchemaFence::MisroutedConnectionError")
      expect(fetch[:exception_object]).to be_a(SchemaFence::MisroutedConnectionError)
      expect(payloads(events, :batch_start)).to be_empty
    end
  end

  it "refuses an event name it does not publish" do
    expect { described_class.instrument(:batch_started, {}) }
      .to raise_error(ArgumentError, /unknown schema_fence event :batch_started; known: enqueue, fetch/)
  end

  it "publishes cutover_step for the cutover, returning the block's value" do
    events = events_during do
      expect(described_class.instrument(:cutover_step, { step: :stamp, database: "ci", duration: 0.25 }) { 42 }).to eq(42)
    end
    expect(payloads(events, :cutover_step)).to eq([{ step: :stamp, database: "ci", duration: 0.25 }])
  end

  describe SchemaFence::LogSubscriber do
    let(:log) { StringIO.new }

    around do |example|
      logger = Logger.new(log, level: Logger::DEBUG, formatter: ->(severity, _, _, msg) { "#{severity} #{msg}\n" })
      SchemaFence.configuration.logger = logger
      example.run
    ensure
      SchemaFence.configuration.logger = nil
    end

    it "writes one line per event to the configured logger, at the event's level" do
      url = Batches.database("instr_log", name: "ci", serves: %w[ci], rows: 100)
      good = Batches.queue(url, "IncrementDone", "ci_builds", :gitlab_ci, batch_size: 100)
      bad = Batches.queue(url, "TouchProjects", "ci_builds", :gitlab_ci, batch_size: 100)
      w = worker(url, :ci)
      w.run_migration_batch(good)
      w.run_migration_batch(bad)
      SchemaFence::Instrumentation.instrument(:cutover_step, step: :stamp, database: "ci", duration: 0.25)
      lines = log.string.lines(chomp: true)
      expect(lines.size).to eq(8)
      job = "job \\d+ of migration"
      expect(lines[0]).to match(/\ADEBUG schema_fence fetch ci: claimed #{job} #{good} \(\d+\.\d ms\)\z/)
      expect(lines[1]).to match(/\ADEBUG schema_fence batch_start ci: #{job} #{good} \(IncrementDone on ci_builds, gitlab_ci\) /)
      expect(lines[1]).to end_with(" keys 1..100 attempt 1 started")
      expect(lines[2]).to match(/\AINFO schema_fence batch_finish ci: #{job} #{good} .* done in [\d.]+s: migration_finished\z/)
      expect(lines[5]).to match(/\AERROR schema_fence guard_violation ci: #{job} #{bad} \(TouchProjects on ci_builds, /)
      expect(lines[5]).to match(/ keys 1..100 stopped by the statement guard: .*projects/)
      expect(lines[6]).to match(/\AWARN schema_fence batch_failure ci: #{job} #{bad} .* attempt 1 failed in \d+\.\d{3}s: /)
      expect(lines[6]).to end_with("SchemaFence::CrossDatabaseAccessError: #{lines[5][/guard: (.*)/, 1]}; recorded")
      expect(lines[7]).to eq("INFO schema_fence cutover_step ci: step stamp done in 0.250s")
    end

    it "writes a claim refused after a cutover changed the epoch at info level: it is expected" do
      url = Batches.database("instr_log_epoch", name: "ci", serves: %w[ci])
      id = Batches.queue(url, "IncrementDone", "ci_builds", :gitlab_ci)
      w = worker(url, :ci)
      _, epoch = w.fetch
      Batches.stamp!(url, "epoch = epoch + 1") # what the cutover's stamp does
      log.truncate(0)
      log.rewind
      expect { w.run_migration_batch(id, epoch) }.to raise_error(SchemaFence::EpochChangedError)
      expect(log.string).to start_with("INFO schema_fence fetch ci: refused: SchemaFence::EpochChangedError: ")
    end

    it "says when a cutover step was finished by an earlier run" do
      SchemaFence::Instrumentation.instrument(:cutover_step, step: :pause, database: "main (source)", duration: 0.0,
                                                             skipped: true)
      expect(log.string).to eq("INFO schema_fence cutover_step main (source): step pause finished by an earlier run\n")
    end

    it "writes a refused fetch at error level, naming the exception" do
      url = Batches.database("instr_log_misrouted", name: "main", serves: %w[main])
      expect { worker(url, :ci).run_once }.to raise_error(SchemaFence::MisroutedConnectionError)
      expect(log.string).to start_with("ERROR schema_fence fetch ci: refused: SchemaFence::MisroutedConnectionError: ")
      expect(log.string).to include('"ci" reached the database stamped "main"')
      expect(log.string.lines.size).to eq(1)
    end
  end
end
