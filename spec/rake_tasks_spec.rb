# frozen_string_literal: true

# A job that fails while FlakyIncrement.broken is set, as a job with a bug does until it is fixed.
class FlakyIncrement < SchemaFence::BatchedMigrationJob
  class << self
    attr_accessor :broken
  end

  def perform
    raise "FlakyIncrement is broken" if self.class.broken

    each_sub_batch { |sub_batch| sub_batch.update_all("done = done + 1") }
  end
end

RSpec.describe "rake schema_fence tasks", :postgres do
  before { Batches.configure }

  after do
    Operating.reset
    FlakyIncrement.broken = false
  end

  def rake(task, env: {})
    Operating.rake(task, env:)
  end

  def worker(url, database)
    SchemaFence::Worker.new(database:, url:)
  end

  def stored_status(url, id)
    Batches.status(url, id)
  end

  # main serves main and holds a stale ci row; ci serves ci.
  let!(:main) { Batches.database("rake_main", name: "main", serves: %w[main], rows: 120) }
  let!(:ci) { Batches.database("rake_ci", name: "ci", serves: %w[ci], rows: 150) }

  before do
    Batches.queue(main, "IncrementDone", "projects", :gitlab_main, batch_size: 40)     # main_1
    Batches.queue(main, "IncrementDone", "ci_builds", :gitlab_ci, batch_size: 40)      # main_2, stale
    Batches.queue(ci, "IncrementDone", "ci_builds", :gitlab_ci, batch_size: 50)        # ci_1
    worker(main, :main).run_once
    Operating.configure(main:, ci:)
  end

  describe "schema_fence:status" do
    it "prints a table per database" do
      run = rake("schema_fence:status")
      expect(run.exit_status).to eq(0)
      expect(run.out).to include("main: identity main serving main, epoch 0", "ci: identity ci serving ci, epoch 0")
      expect(run.out).to match(%r{\| main_1 +\| IncrementDone .*\| active .*\] 33% \| 1 done / 0 failed})
      expect(run.out).to match(/\| main_2 .*\| stale \(active\) /)
    end

    it "prints JSON for scripts with FORMAT=json, or as the task's argument" do
      [rake("schema_fence:status", env: { "FORMAT" => "json" }), rake("schema_fence:status[json]")].each do |run|
        databases = run.json["databases"]
        expect(databases.map { |d| [d["name"], d["identity"]["serves"]] }).to eq([["main", ["main"]], ["ci", ["ci"]]])
        expect(databases.flat_map { |d| d["migrations"] }.map { |m| [m["id"], m["status"], m["progress"]] })
          .to eq([["main_1", "active", 40 / 120.0], ["main_2", "stale", 0.0], ["ci_1", "active", 0.0]])
      end
    end

    it "refuses a format it does not know" do
      run = rake("schema_fence:status", env: { "FORMAT" => "yaml" })
      expect([run.exit_status, run.err]).to eq([1, "schema_fence: unknown FORMAT \"yaml\": use text or json\n"])
    end
  end

  describe "schema_fence:pause and schema_fence:resume" do
    it "stop and restart the batches of one migration" do
      run = rake("schema_fence:pause[ci_1]")
      expect([run.exit_status, run.out]).to eq([0, "ci_1 (IncrementDone on ci_builds) paused\n"])
      expect(stored_status(ci, 1)).to eq(:paused)
      expect(worker(ci, :ci).run_once.status).to eq(:nothing)

      expect(rake("schema_fence:resume[ci_1]").out).to eq("ci_1 (IncrementDone on ci_builds) resumed\n")
      expect(stored_status(ci, 1)).to eq(:active)
      expect(worker(ci, :ci).run_once.status).to eq(:ran)
    end

    it "refuse a stale row, saying why, and change nothing" do
      run = rake("schema_fence:pause[main_2]")
      expect(run.exit_status).to eq(1)
      expect(run.err).to start_with("schema_fence: main_2 is a stale row: its tag gitlab_ci is not served by main any " \
                                    "more (identity main serving main, epoch 0). It was left behind by the split")
      expect(run.err).to include("schema_fence:cleanup")
      expect(stored_status(main, 2)).to eq(:active)
    end

    it "refuse an unknown id, naming the known ones" do
      run = rake("schema_fence:resume[ci_7]")
      expect(run.exit_status).to eq(1)
      expect(run.err).to eq("schema_fence: no migration \"ci_7\" on main, ci (known ids: main_1, main_2, ci_1; " \
                            "see rake schema_fence:status)\n")
    end

    it "refuse to pause what is not active, and to resume what is not paused" do
      expect(rake("schema_fence:resume[main_1]").err)
        .to eq("schema_fence: main_1 (IncrementDone on projects) is active: only a migration that is paused can be " \
               "resumed.\n")
      Batches.drain(worker(ci, :ci))
      expect(rake("schema_fence:pause[ci_1]").err)
        .to eq("schema_fence: ci_1 (IncrementDone on ci_builds) is finished: only a migration that is active can be " \
               "paused.\n")
    end

    it "ask for the id when it is missing" do
      run = rake("schema_fence:pause")
      expect([run.exit_status, run.err])
        .to eq([1, "schema_fence: give the migration's id, e.g. rake schema_fence:pause[main_12] " \
                   "(see rake schema_fence:status)\n"])
    end
  end

  describe "schema_fence:retry_failed" do
    it "puts the failed batches back to pending with fresh attempts, and the failed migration back to active" do
      id = Batches.queue(ci, "FlakyIncrement", "ci_builds", :gitlab_ci, batch_size: 150)
      rake("schema_fence:pause[ci_1]")
      FlakyIncrement.broken = true
      w = worker(ci, :ci)
      3.times { expect(w.run_migration_batch(id).status).to eq(:failed) }
      expect(stored_status(ci, id)).to eq(:failed)
      expect(rake("schema_fence:status[json]").json["databases"][1]["migrations"][1])
        .to include("status" => "failed", "batches_failed" => 1, "last_error" => "RuntimeError: FlakyIncrement is broken")

      FlakyIncrement.broken = false
      run = rake("schema_fence:retry_failed[ci_#{id}]")
      expect(run.out).to eq("ci_#{id} (FlakyIncrement on ci_builds): 1 failed batch(es) back to pending, migration active\n")
      attempts = PG.connect(ci) do |c|
        c.exec_params("SELECT status, attempts FROM batched_background_migration_jobs " \
                      "WHERE batched_background_migration_id = $1", [id]).values
      end
      expect(attempts).to eq([%w[0 0]])
      expect(w.run_migration_batch(id).status).to eq(:ran)
      expect(stored_status(ci, id)).to eq(:finished)
      expect(Batches.done_counts(ci, "ci_builds")).to eq([0, 150, 0])
    end

    it "says there is nothing to retry when no batch failed" do
      run = rake("schema_fence:retry_failed[main_1]")
      expect([run.exit_status, run.err])
        .to eq([1, "schema_fence: main_1 (IncrementDone on projects) has no failed batches (it is active): nothing to retry\n"])
    end

    it "refuses a stale row" do
      expect(rake("schema_fence:retry_failed[main_2]").err).to start_with("schema_fence: main_2 is a stale row")
    end
  end

  describe "schema_fence:finalize" do
    it "runs the remaining batches on the configured connection, showing progress, then marks the migration finalized" do
      run = rake("schema_fence:finalize[main_1]")
      expect(run.exit_status).to eq(0)
      # not a terminal: a progress line at the start and every 5 s, then the result
      expect(run.out.lines.first).to match(/\Afinalizing main_1: \[[= ]+\] +\d+%, \d+ batches done, \d+s so far\n\z/)
      expect(run.out.lines.last).to eq("main_1 (IncrementDone on projects) finalized\n")
      expect(stored_status(main, 1)).to eq(:finalized)
      expect(Batches.done_counts(main, "projects")).to eq([0, 120, 0])
      expect(rake("schema_fence:finalize[main_1]").out).to eq("main_1 (IncrementDone on projects) is already finalized\n")
    end

    it "refuses a paused migration, saying how to resume it" do
      rake("schema_fence:pause[ci_1]")
      expect(rake("schema_fence:finalize[ci_1]").err)
        .to eq("schema_fence: ci_1 (IncrementDone on ci_builds) is paused: only a migration that is active or " \
               "finalizing or finished can be finalized. Resume it first: rake schema_fence:resume[ci_1]\n")
      expect(Batches.done_counts(ci, "ci_builds")).to eq([150, 0, 0])
    end

    it "refuses a stale row and runs nothing of it" do
      expect(rake("schema_fence:finalize[main_2]").err).to start_with("schema_fence: main_2 is a stale row")
      expect(Batches.done_counts(main, "ci_builds")).to eq([120, 0, 0])
    end
  end

  it "lists every task with a description, loaded by a plain Rakefile" do
    app = Rake::Application.new
    previous = Rake.application
    Rake.application = app
    Rake::TaskManager.record_task_metadata = true # as `rake -T` does
    load "schema_fence/tasks/schema_fence.rake"
    described = app.tasks.select(&:comment).map(&:name)
    expect(described).to include("schema_fence:status", "schema_fence:pause", "schema_fence:resume",
                                 "schema_fence:retry_failed", "schema_fence:finalize")
  ensure
    Rake::TaskManager.record_task_metadata = false
    Rake.application = previous
  end
end
