# frozen_string_literal: true

RSpec.describe SchemaFence::Worker, :postgres do
  before { Batches.configure }

  def worker(url, database)
    described_class.new(database:, url:)
  end

  describe "identity fencing" do
    context "with ci sharing main's database" do
      let(:url) { Batches.database("worker_shared", name: "main", serves: %w[main ci]) }

      it "idles ci's worker, and main's worker runs ci's migrations too" do
        ci_id = Batches.queue(url, "IncrementDone", "ci_builds", :gitlab_ci)
        main_id = Batches.queue(url, "IncrementDone", "projects", :gitlab_main)
        expect(worker(url, :ci).run_once.status).to eq(:idle)
        outcomes = Batches.drain(worker(url, :main))
        expect(outcomes.map(&:status).uniq).to eq([:ran])
        expect(Batches.done_counts(url, "ci_builds")).to eq([0, 100, 0])
        expect(Batches.done_counts(url, "projects")).to eq([0, 100, 0])
        expect([Batches.status(url, ci_id), Batches.status(url, main_id)]).to eq(%i[finished finished])
      end
    end

    context "with split databases" do
      it "runs only the migrations of the schemas its database serves" do
        url = Batches.database("worker_split", name: "ci", serves: %w[ci])
        ci_id = Batches.queue(url, "IncrementDone", "ci_builds", :gitlab_ci)
        stale = Batches.queue(url, "IncrementDone", "projects", :gitlab_main)
        Batches.drain(worker(url, :ci))
        expect(Batches.status(url, ci_id)).to eq(:finished)
        expect(Batches.status(url, stale)).to eq(:active)
        expect(Batches.done_counts(url, "projects")).to eq([100, 0, 0])
      end
    end

    context "with a ci connection pointed at main after the split" do
      it "raises MisroutedConnectionError and runs nothing" do
        url = Batches.database("worker_misrouted", name: "main", serves: %w[main])
        Batches.queue(url, "IncrementDone", "projects", :gitlab_main)
        expect { worker(url, :ci).run_once }
          .to raise_error(SchemaFence::MisroutedConnectionError, /"ci" reached the database stamped "main"/)
        expect(Batches.done_counts(url, "projects")).to eq([100, 0, 0])
      end
    end
  end

  describe "Ruby jobs" do
    let(:url) { Batches.database("worker_ruby", name: "ci", serves: %w[ci], rows: 250) }

    it "runs each sub-batch on the ActiveRecord connection and reports progress" do
      id = Batches.queue(url, "IncrementDone", "ci_builds", :gitlab_ci, batch_size: 100, sub_batch_size: 30)
      w = worker(url, :ci)
      first = w.run_once
      expect([first.batch.min_value, first.batch.max_value, first.completion]).to eq([1, 100, :recorded])
      expect(SchemaFence::Migrations.on(url).find_by_id(id).progress).to eq(100 / 250.0)
      Batches.drain(w)
      expect(Batches.done_counts(url, "ci_builds")).to eq([0, 250, 0])
    end

    it "stops a statement that reaches another database's table before the server sees it" do
      id = Batches.queue(url, "TouchProjects", "ci_builds", :gitlab_ci, batch_size: 250)
      outcome = worker(url, :ci).run_once
      expect(outcome.status).to eq(:failed)
      expect(outcome.error).to be_a(SchemaFence::CrossDatabaseAccessError)
      expect(outcome.error.message).to include("projects", "gitlab_main")
      expect(Batches.done_counts(url, "projects")).to eq([250, 0, 0])
      expect(Batches.status(url, id)).to eq(:active)
    end

    it "fails the batch with a SchemaFence::Error when the job class name names a constant that is no class" do
      Batches.queue(url, "RUBY_VERSION", "ci_builds", :gitlab_ci, batch_size: 250)
      outcome = worker(url, :ci).run_once
      expect(outcome.status).to eq(:failed)
      expect(outcome.error).to be_a(SchemaFence::Error)
      expect(outcome.error.message).to eq("RUBY_VERSION is not a SchemaFence::BatchedMigrationJob")
    end
  end

  describe "in a process that serves two databases" do
    let(:main_url) { Batches.database("two_main", name: "main", serves: %w[main], rows: 200, on: :main) }
    let(:ci_url) { Batches.database("two_ci", name: "ci", serves: %w[ci], rows: 200, on: :ci) }

    # A gitlab_shared table exists on both databases, and each runs its own copy's migration.
    def shared_table(url)
      PG.connect(url) do |c|
        c.exec("CREATE TABLE loose_foreign_keys_deleted_records (id bigint PRIMARY KEY, done int NOT NULL DEFAULT 0)")
        c.exec("INSERT INTO loose_foreign_keys_deleted_records (id) SELECT generate_series(1, 200)")
      end
      Batches.queue(url, "IncrementDone", "loose_foreign_keys_deleted_records", :gitlab_shared, batch_size: 20)
    end

    it "runs every Ruby batch on the database it was claimed on, whichever connected last" do
      ids = [main_url, ci_url].map { |url| shared_table(url) }
      workers = [worker(main_url, :main), worker(ci_url, :ci)]
      # Alternating, as the threads of one Sidekiq process do: each worker's pool is its own.
      30.times { workers.each(&:run_once) }
      [main_url, ci_url].zip(ids).each do |url, id|
        expect(Batches.done_counts(url, "loose_foreign_keys_deleted_records")).to eq([0, 200, 0])
        expect(Batches.status(url, id)).to eq(:finished)
      end
    end

    it "gives each database and URL a connection class of its own, the same one every time" do
      main = SchemaFence::WorkerRecord.for(:main, main_url)
      expect(SchemaFence::WorkerRecord.for(:main, main_url)).to equal(main)
      ci = SchemaFence::WorkerRecord.for(:ci, ci_url)
      expect(ci).not_to equal(main)
      expect(ci.connection_pool).not_to equal(main.connection_pool)
      expect(main.name).to start_with("SchemaFence::WorkerRecord::Db_main_")
      expect(ci.connection_pool.with_connection { |c| c.select_value("SELECT name FROM schema_fence_identity") }).to eq("ci")
      expect(main.connection_pool.with_connection { |c| c.select_value("SELECT name FROM schema_fence_identity") })
        .to eq("main")
    end

    it "refuses a job connection that reaches another database and records the batch as failed" do
      id = shared_table(main_url)
      shared_table(ci_url)
      crossed = described_class.new(database: :main, url: main_url,
                                    connection_class: SchemaFence::WorkerRecord.for(:ci, ci_url))
      outcome = crossed.run_once
      expect(outcome.status).to eq(:failed)
      expect(outcome.error).to be_a(SchemaFence::JobConnectionMismatchError)
      expect(outcome.error.message).to include('claimed on the database stamped "main"', 'reaches the database stamped "ci"')
      [main_url, ci_url].each do |url|
        expect(Batches.done_counts(url, "loose_foreign_keys_deleted_records")).to eq([200, 0, 0])
      end
      PG.connect(main_url) do |c|
        job = c.exec("SELECT status, metrics->>'error' AS error FROM batched_background_migration_jobs").first
        expect(job["status"]).to eq("2")
        expect(job["error"]).to include("JobConnectionMismatchError")
      end
      expect(Batches.status(main_url, id)).to eq(:active)
    end
  end

  describe "the connections of Ruby jobs" do
    let(:url) { Batches.database("worker_connections", name: "ci", serves: %w[ci], rows: 100) }

    it "returns the thread's connection to the pool after every batch" do
      Batches.queue(url, "IncrementDone", "ci_builds", :gitlab_ci, batch_size: 10, sub_batch_size: 5)
      w = worker(url, :ci)
      4.times.map { Thread.new { w.run_once } }.each(&:join)
      pool = w.send(:connection_class).connection_pool
      expect(pool.stat[:busy]).to eq(0)
      expect(Batches.done_counts(url, "ci_builds")).to eq([60, 40, 0])
    end

    it "discards only the failed batch's connection: other threads keep theirs" do
      Batches.queue(url, "FailWithSqlError", "ci_builds", :gitlab_ci, batch_size: 10, sub_batch_size: 5)
      w = worker(url, :ci)
      pool = w.send(:connection_class).connection_pool
      held = Queue.new
      release = Queue.new
      other = Thread.new do
        pool.with_connection do |c|
          c.execute("BEGIN")
          c.execute("INSERT INTO projects (id) VALUES (1000)")
          held << c
          release.pop
          c.execute("COMMIT")
          c.select_value("SELECT count(*) FROM projects WHERE id = 1000")
        end
      end
      other_connection = held.pop
      outcome = w.run_once
      expect(outcome.status).to eq(:failed)
      expect(outcome.error).to be_a(ActiveRecord::StatementInvalid)
      expect(pool.connections).to include(other_connection)
      expect(other_connection.raw_connection.transaction_status).to eq(PG::PQTRANS_INTRANS)
      release << true
      expect(other.value).to eq(1)
      expect(w.run_once.status).to eq(:failed) # the next batch gets a fresh connection
    end

    it "fails a batch whose job leaves its own transaction open, committing nothing of it" do
      id = Batches.queue(url, "LeaveTransactionOpen", "ci_builds", :gitlab_ci, batch_size: 100)
      outcome = worker(url, :ci).run_once
      expect(outcome.status).to eq(:failed)
      expect(outcome.error.message).to include("ended inside a transaction it did not commit")
      expect(Batches.done_counts(url, "ci_builds")).to eq([100, 0, 0])
      expect(Batches.status(url, id)).to eq(:active)
    end
  end

  describe "SQL jobs" do
    it "run in Rust, guarded like Ruby jobs" do
      url = Batches.database("worker_sql", name: "ci", serves: %w[ci], rows: 300)
      SchemaFence.sql_job("SqlIncrementCiBuilds", "UPDATE ci_builds SET done = done + 1 WHERE id BETWEEN $1 AND $2")
      SchemaFence.sql_job("SqlTouchProjects", "UPDATE projects SET done = done + 1 WHERE id BETWEEN $1 AND $2")
      good = Batches.queue(url, "SqlIncrementCiBuilds", "ci_builds", :gitlab_ci, batch_size: 100)
      bad = Batches.queue(url, "SqlTouchProjects", "ci_builds", :gitlab_ci, batch_size: 300)
      outcomes = Batches.drain(worker(url, :ci))
      expect(Batches.status(url, good)).to eq(:finished)
      expect(Batches.done_counts(url, "ci_builds")).to eq([0, 300, 0])
      failed = outcomes.select { |o| o.status == :failed }
      expect(failed.map { |o| o.error.class }.uniq).to eq([SchemaFence::CrossDatabaseAccessError])
      expect(Batches.done_counts(url, "projects")).to eq([300, 0, 0])
      expect(Batches.status(url, bad)).to eq(:failed)
    end
  end

  describe "native calls" do
    let(:url) { Batches.database("worker_native", name: "ci", serves: %w[ci]) }

    it "release the GVL while they wait on PostgreSQL" do
      Batches.queue(url, "IncrementDone", "ci_builds", :gitlab_ci)
      blocker = PG.connect(url)
      blocker.exec("BEGIN")
      blocker.exec("SELECT * FROM schema_fence_identity FOR UPDATE")
      ticks = 0
      ticker = Thread.new do
        loop do
          ticks += 1
          sleep 0.01
        end
      end
      claimer = Thread.new { worker(url, :ci).runner.claim_next }
      sleep 0.5
      ticks_while_blocked = ticks
      blocker.exec("COMMIT")
      expect(claimer.value).to be_a(SchemaFence::Batch)
      expect(ticks_while_blocked).to be > 20
    ensure
      ticker&.kill
      blocker&.close
    end

    it "open their own connection in a forked child" do
      Batches.queue(url, "IncrementDone", "ci_builds", :gitlab_ci, batch_size: 10, sub_batch_size: 5)
      w = worker(url, :ci)
      expect(w.run_once.status).to eq(:ran)
      pid = fork do
        outcome = w.run_once
        exit!(outcome.status == :ran ? 0 : 1)
      end
      _, status = Process.wait2(pid)
      expect(status.exitstatus).to eq(0)
      expect(w.run_once.status).to eq(:ran)
      expect(Batches.done_counts(url, "ci_builds")).to eq([70, 30, 0])
    end
  end
end
