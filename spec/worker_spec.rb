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
