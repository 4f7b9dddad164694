# frozen_string_literal: true

# Why an active migration is not running now, and a time left that counts down: on a real
# cluster, with real workers connected (or none).
RSpec.describe SchemaFence::Status, :postgres do
  before { Batches.configure }
  after { Operating.reset }

  def main_database(prefix)
    url = Batches.database(prefix, name: "main", serves: %w[main], rows: 200)
    Operating.configure(main: url)
    url
  end

  # A worker of main, connected (its runner holds a connection named schema_fence/main/runner
  # from its first fetch on).
  def connected_worker(url)
    SchemaFence::Worker.new(database: :main, url:).tap(&:fetch)
  end

  def entry(id)
    described_class.collect.find(id)
  end

  def cell(id)
    described_class.collect.to_text.lines.find { |l| l.start_with?("| #{id} ") }.split("|")[5].strip
  end

  it "waits for its interval, says when the next batch is due, and counts the time left down" do
    url = main_database("waiting_interval")
    Batches.queue(url, "IncrementDone", "projects", :gitlab_main, batch_size: 50, interval: 120)
    worker = connected_worker(url)
    expect(worker.run_once.status).to eq(:ran)

    first = entry("main_1")
    expect(first.waiting).to eq(:interval)
    expect(first.waiting_note)
      .to match(/\Awaiting for its interval \(120s between batches\): next batch at \d\d:\d\d:\d\d UTC \(in (1m 5\ds|2m 00s)\)\z/)
    # one batch alone stands for its interval: 50 keys per 120 s, not per its own few milliseconds
    expect(first.rate).to be_within(0.01).of(50 / 120.0)
    expect(first.eta).to be_within(3).of(360)
    sleep 2.1
    later = entry("main_1")
    expect(later.eta).to be <= first.eta - 2
    expect(cell("main_1")).to start_with("active: waiting for its interval")
  end

  it "names the migration it waits behind on the same table" do
    url = main_database("waiting_behind")
    Batches.queue(url, "IncrementDone", "projects", :gitlab_main)
    Batches.queue(url, "BackfillProjectsAgain", "projects", :gitlab_main)
    connected_worker(url)

    expect(entry("main_1").waiting).to be_nil
    second = entry("main_2")
    expect(second.waiting).to eq(:behind)
    expect(second.waiting_note).to eq("behind main_1 (IncrementDone): one migration of projects runs at a time, oldest first")
  end

  it "says paused, and on hold until when and why" do
    url = main_database("waiting_hold")
    Batches.queue(url, "IncrementDone", "projects", :gitlab_main)
    Batches.queue(url, "BackfillProjectsAgain", "projects", :gitlab_main)
    connected_worker(url)
    SchemaFence::Operations.pause("main_1")
    expect(entry("main_1").waiting).to eq(:paused)
    expect(cell("main_1")).to eq("paused")

    PG.connect(url) do |c|
      c.exec("UPDATE batched_background_migrations SET on_hold_until = now() + interval '10 minutes' WHERE id = 2")
    end
    expect(entry("main_2").waiting_note).to match(/\Aon hold until \d\d:\d\d:\d\d UTC \(in (9m 5\ds|10m 00s)\)\z/)

    PG.connect(url) do |c|
      c.exec("UPDATE batched_background_migrations SET schema_fence_hold_reason = 'autovacuum is running on projects'")
    end
    held = entry("main_2")
    expect(held.waiting).to eq(:on_hold)
    expect(held.waiting_note).to end_with("because autovacuum is running on projects")
    expect(held.to_h).to include(waiting: :on_hold, waiting_note: held.waiting_note)
    # One rendering of a hold: status's hold is the waiting note, and the table shows it once.
    expect(held.hold).to eq(held.waiting_note)
    shown = cell("main_2")
    expect(shown).to start_with("active, on hold until ").and end_with("because autovacuum is running on projects")
    expect(shown.scan("on hold").size).to eq(1)

    PG.connect(url) { |c| c.exec("UPDATE batched_background_migrations SET on_hold_until = now() + interval '3 days'") }
    expect(entry("main_2").hold)
      .to match(/\Aon hold until \d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC \(in 3d 00h\) because autovacuum/)
  end

  it "says when no worker is connected to serve a due migration, and stops saying it when one is" do
    url = main_database("waiting_no_worker")
    Batches.queue(url, "IncrementDone", "projects", :gitlab_main)
    expect(entry("main_1").waiting).to eq(:no_worker)
    expect(entry("main_1").waiting_note).to eq("due, but no schema_fence worker is connected to main")

    connected_worker(url)
    expect(entry("main_1").waiting).to be_nil
    expect(cell("main_1")).to eq("active")
  end

  it "says when failed batches wait for their retry" do
    url = main_database("waiting_retry")
    Batches.queue(url, "IncrementDone", "projects", :gitlab_main, batch_size: 50)
    worker = connected_worker(url)
    worker.run_once
    PG.connect(url) { |c| c.exec("UPDATE batched_background_migration_jobs SET status = 2, attempts = 1") }

    failed = entry("main_1")
    expect(failed.waiting).to eq(:retry)
    expect(failed.waiting_note).to eq("due: 1 failed batch waits for a retry, the next claim takes one")
    worker.run_once
    expect(entry("main_1").waiting).to be_nil
  end

  describe "run_once finding nothing" do
    it "says that no migration is active" do
      url = main_database("nothing_none")
      outcome = connected_worker(url).run_once
      expect([outcome.status, outcome.reason, outcome.waiting]).to eq([:nothing, :no_active_migrations, {}])
    end

    it "says why each active migration waits" do
      url = main_database("nothing_waiting")
      Batches.queue(url, "IncrementDone", "projects", :gitlab_main, batch_size: 50, interval: 120)
      Batches.queue(url, "BackfillProjectsAgain", "projects", :gitlab_main)
      worker = connected_worker(url)
      expect(worker.run_once.status).to eq(:ran)

      outcome = worker.run_once
      expect([outcome.status, outcome.reason]).to eq(%i[nothing waiting])
      expect(outcome.waiting.keys).to eq(%w[main_1 main_2])
      expect(outcome.waiting["main_1"]).to start_with("waiting for its interval (120s between batches): next batch at ")
      expect(outcome.waiting["main_2"]).to start_with("behind main_1 (IncrementDone)")
    end
  end
end
