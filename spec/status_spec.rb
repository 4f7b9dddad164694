# frozen_string_literal: true

RSpec.describe SchemaFence::Status, :postgres do
  before { Batches.configure }
  after { Operating.reset }

  def worker(url, database)
    SchemaFence::Worker.new(database:, url:)
  end

  # After a split: main serves main (200 projects, 3 of 4 batches done, and a stale ci row left
  # behind), ci serves ci (250 ci_builds, 1 of 5 batches done).
  def split_databases
    main = Batches.database("status_main", name: "main", serves: %w[main], rows: 200)
    ci = Batches.database("status_ci", name: "ci", serves: %w[ci], rows: 250)
    Batches.queue(main, "IncrementDone", "projects", :gitlab_main, batch_size: 50)
    Batches.queue(main, "IncrementDone", "ci_builds", :gitlab_ci, batch_size: 50)
    Batches.queue(ci, "IncrementDone", "ci_builds", :gitlab_ci, batch_size: 50)
    3.times { worker(main, :main).run_once }
    worker(ci, :ci).run_once
    # main's batches finished 24, 14 and 4 s ago, ci's one 2 s ago
    Operating.space_finishes(main, 1, step: 10, took: 2, ago: 34)
    Operating.space_finishes(ci, 1, step: 10, took: 2, ago: 12)
    Operating.configure(main:, ci:)
    [main, ci]
  end

  describe "of split databases" do
    before { split_databases }

    let(:status) { described_class.collect }

    it "lists each database's identity and its migrations with ids across databases" do
      expect(status.databases.map { |d| [d.name, d.state, d.identity.name, d.identity.serves, d.identity.epoch] })
        .to eq([["main", :owner, "main", %w[main], 0], ["ci", :owner, "ci", %w[ci], 0]])
      expect(status.migrations.map { |m| [m.id, m.job_class_name, m.table_name, m.gitlab_schema, m.status] })
        .to eq([["main_1", "IncrementDone", "projects", :gitlab_main, :active],
                ["main_2", "IncrementDone", "ci_builds", :gitlab_ci, :stale],
                ["ci_1", "IncrementDone", "ci_builds", :gitlab_ci, :active]])
    end

    it "gives progress over the key range, batches, the rate between finishes and the time left since the last" do
      projects = status.find("main_1")
      expect(projects.to_h).to include(progress: 0.75, keys_done: 150, min_value: 1, max_value: 200,
                                       batches_done: 3, batches_failed: 0)
      expect(projects.rate).to be_within(0.001).of(5.0) # 100 keys over the 20 s between the first and last finish
      expect(projects.eta).to be_within(2).of(6) # 50 keys at 5 keys/s from a finish 4 s ago
      builds = status.find("ci_1")
      expect(builds.rate).to be_within(0.001).of(25.0) # one batch, no interval: 50 keys in its own 2 s
      expect(builds.to_h).to include(progress: 0.2)
      expect(builds.eta).to be_within(2).of(6) # 200 keys at 25 keys/s from a finish 2 s ago
    end

    it "shows a stale row as stale, keeping the status stored in it" do
      stale = status.find("main_2")
      expect(stale.to_h).to include(status: :stale, stored_status: :active, stale: true, rate: nil, eta: nil)
    end

    it "renders a table per database with a progress bar per migration" do
      text = status.to_text
      cells = ->(id) { text.lines.find { |l| l.start_with?("| #{id} ") }.split("|")[1..-2].map(&:strip) }
      expect(text).to include("main: identity main serving main, epoch 0", "ci: identity ci serving ci, epoch 0")
      expect(text).to include("| id ", "| job ", "| table ", "| tag ", "| status ", "| progress ", "| batches ", "| rate ",
                              "| time left |")
      expect(cells["main_1"]).to match(["main_1", "IncrementDone", "projects.id", "gitlab_main", /\Aactive/,
                                        /\A\[=+ +\] 75%\z/, "3 done / 0 failed", "5.0 keys/s", /\A\ds\z/])
      expect(cells["main_2"]).to match(["main_2", "IncrementDone", "ci_builds.id", "gitlab_ci", "stale (active)",
                                        /\A\[ +\] 0%\z/, "0 done / 0 failed", "-", "-"])
      expect(cells["ci_1"]).to match(["ci_1", "IncrementDone", "ci_builds.id", "gitlab_ci", /\Aactive/,
                                      /\A\[=+ +\] 20%\z/, "1 done / 0 failed", "25 keys/s", /\A\ds\z/])
      bars = %w[main_1 main_2 ci_1].map { |id| cells[id][5].length }
      expect(bars.uniq).to eq([SchemaFence::Status::TextRenderer::BAR_LENGTH])
    end

    it "gives the same as JSON, without the URLs" do
      json = JSON.parse(status.to_json)
      main = json["databases"].first
      expect(main).to include("name" => "main", "state" => "owner", "note" => nil)
      expect(main["identity"]).to include("name" => "main", "serves" => ["main"], "epoch" => 0)
      expect(main["migrations"].first).to include("id" => "main_1", "row_id" => 1, "status" => "active",
                                                  "gitlab_schema" => "gitlab_main", "progress" => 0.75,
                                                  "batches_done" => 3)
      expect(main["migrations"][1]).to include("id" => "main_2", "status" => "stale", "stored_status" => "active",
                                               "stale" => true)
      expect(status.to_json).not_to include("postgres://")
    end

    it "says when a cutover holds the claims of a database" do
      main = status.database(:main)
      expect(main.claims_paused).to be(false)
      # what the cutover's pause step does
      Batches.stamp!(SchemaFence.configuration.databases["ci"][:url], "claims_paused = true")
      paused = described_class.collect
      expect(paused.database(:ci).claims_paused).to be(true)
      expect(paused.to_text).to include("ci: identity ci serving ci, epoch 0, claims paused by a cutover")
      expect(paused.to_h[:databases].map { |d| d[:claims_paused] }).to eq([false, true])
    end

    it "refuses an unknown id, naming the known ones" do
      expect { status.find("main_9") }
        .to raise_error(SchemaFence::UnknownMigrationError,
                        /no migration "main_9" on main, ci \(known ids: main_1, main_2, ci_1; see rake schema_fence:status\)/)
      expect { status.find("nope") }.to raise_error(SchemaFence::UnknownMigrationError, /known ids: main_1/)
    end

    it "reads ids as decimal: a leading zero is not octal, an 8 or 9 after it is no error" do
      expect(status.find("main_01").id).to eq("main_1")
      expect(status.find("main_002").id).to eq("main_2")
      expect { status.find("main_09") }.to raise_error(SchemaFence::UnknownMigrationError, /no migration "main_09"/)
    end
  end

  it "writes the time left in the two largest units, and rates with thousands separated" do
    renderer = SchemaFence::Status::TextRenderer
    expect([nil, 0, 42, 200, 7_500, 200_000].map { |s| renderer.duration(s) })
      .to eq(["-", "done", "42s", "3m 20s", "2h 05m", "2d 07h"])
    expect([nil, 2.34, 12_345.6].map { |r| renderer.rate(r) }).to eq(["-", "2.3 keys/s", "12,346 keys/s"])
  end

  describe "the state of each database" do
    it "lists a shared database's migrations under the database stamped in it" do
      url = Batches.database("status_shared", name: "main", serves: %w[main ci])
      Batches.queue(url, "IncrementDone", "ci_builds", :gitlab_ci)
      Operating.configure(main: url, ci: url)
      status = described_class.collect
      expect(status.migrations.map(&:id)).to eq(["main_1"])
      expect(status.database(:ci).state).to eq(:shared)
      expect(status.database(:ci).note).to include("ci shares the database of main", "as main_<id>")
      expect { status.find("ci_1") }.to raise_error(SchemaFence::UnknownMigrationError, /ci_1: ci shares the database of main/)
    end

    it "flags a mis-pointed connection, a database without the install and one it cannot reach" do
      main = Batches.database("status_misrouted", name: "main", serves: %w[main])
      bare = Clusters.fresh_database("status_bare")
      Operating.configure(main:, ci: main, sec: bare, embedding: "postgres://127.0.0.1:1/nowhere")
      status = described_class.collect
      expect(status.databases.map { |d| [d.name, d.state] })
        .to eq([["main", :owner], ["ci", :misrouted], ["sec", :not_installed], ["embedding", :unreachable]])
      expect(status.database(:ci).note).to include("ci's connection reached the database stamped main serving main",
                                                   "mis-pointed")
      expect(status.to_text).to include("ci: identity main serving main, epoch 0", "sec: not installed",
                                        "embedding: unreachable", "cannot read embedding")
    end
  end
end
