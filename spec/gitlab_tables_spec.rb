# frozen_string_literal: true

require "pg"

RSpec.describe "schema_fence on GitLab's own tracking tables", :postgres do
  let(:url) { Clusters.fresh_database("gitlab_tables") }
  let!(:ids) do
    GitlabRows.create(url)
    GitlabRows.seed(url)
  end

  before { Batches.configure }
  after { Operating.reset }

  def install
    report = nil
    expect { report = SchemaFence::Install.up(url, name: "main", serves: %w[main ci]) }
      .to output(/1 batched background migration\(s\) carry a gitlab_schema that differs/).to_stderr
    report
  end

  it "installs on them as they are, warning with the count of mis-tagged rows" do
    expect(install.mistagged).to eq(1)
    columns = PG.connect(url) do |c|
      c.exec("SELECT column_name FROM information_schema.columns WHERE table_name = 'batched_background_migrations'")
       .values.flatten
    end
    expect(columns).to include("min_cursor", "queued_migration_version", "gitlab_schema")
  end

  it "lists every row, the cursor row runnable, and says why a cursor row of another strategy is not" do
    install
    loose = GitlabRows.cursor_migration(url, batch_class_name: "LooseIndexScanBatchingStrategy", job: "Other")
    rows = SchemaFence::Migrations.on(url).to_a
    expect(rows.size).to eq(7)
    cursor = rows.find { |m| m.id == ids[:cursor] }
    expect(cursor.to_h).to include(min_value: nil, max_value: nil, min_cursor: [0, 100], max_cursor: [20, 100])
    expect(rows.reject { |m| m.id == loose }).to all(be_runnable)
    expect(rows.find { |m| m.id == loose }.not_runnable).to match(/cursor-batched .*LooseIndexScanBatchingStrategy/)
    Operating.configure(main: url)
    expect(SchemaFence::Status.collect.to_text).to match(/main_#{loose} .*active, not runnable: cursor-batched/)
  end

  it "lists the rows to retag without writing, and retags them with APPLY=1 in rake schema_fence:retag" do
    install
    report = SchemaFence::Install.retag(url)
    expect(report.changes.map(&:to_h)).to eq(
      [{ id: ids[:builds], table_name: "ci_builds", from: "gitlab_main", to: "gitlab_ci" }]
    )
    expect(report.unresolved).to be_empty
    expect(GitlabRows.tags(url)[ids[:builds]]).to eq("gitlab_main")

    Operating.configure(main: url, ci: url)
    dry = Operating.rake("schema_fence:retag")
    expect(dry.out).to include("main: 1 row(s) to retag", "main_#{ids[:builds]} ci_builds: gitlab_main -> gitlab_ci")
    expect(dry.out).not_to include("ci:") # one physical database, listed once
    expect(GitlabRows.tags(url)[ids[:builds]]).to eq("gitlab_main")
    applied = Operating.rake("schema_fence:retag", env: { "APPLY" => "1" })
    expect(applied.out).to include("main: 1 row(s) retagged")
    expect(GitlabRows.tags(url)[ids[:builds]]).to eq("gitlab_ci")
  end

  it "lists rows whose table does not resolve and retags nothing" do
    install
    mystery = GitlabRows.migration(url, "Gone", "mystery_table", status: 1, range: 1..5, tag: "gitlab_main")
    expect(SchemaFence::Install.retag(url).unresolved.map(&:to_h)).to eq([{ id: mystery, table_name: "mystery_table" }])
    expect { SchemaFence::Install.retag(url, apply: true) }
      .to raise_error(SchemaFence::UnresolvedRowsError, /id #{mystery} \(mystery_table\).*nothing was changed/)
    Operating.configure(main: url)
    run = Operating.rake("schema_fence:retag", env: { "APPLY" => "1" })
    expect(run.exit_status).to eq(1)
    expect(GitlabRows.tags(url)[ids[:builds]]).to eq("gitlab_main")
  end

  it "runs every runnable migration to completion, every key once, the orphaned job's range included" do
    install
    SchemaFence::Install.retag(url, apply: true)
    worker = SchemaFence::Worker.new(database: :main, url:)
    Batches.drain(worker)
    statuses = SchemaFence::Migrations.on(url).to_h { |m| [m.id, m.status] }
    expect(statuses.values_at(ids[:builds], ids[:projects])).to eq(%i[finished finished])
    expect(statuses.values_at(ids[:paused], ids[:failed], ids[:cursor], ids[:finished]))
      .to eq(%i[paused failed finished finished])
    expect(Batches.done_counts(url, "ci_builds")).to eq([0, 300, 0])
    expect(Batches.done_counts(url, "projects")).to eq([0, 200, 0])
    expect(Batches.done_counts(url, "ci_stages")).to eq([0, 20, 0])
  end

  it "runs the cursor row's Ruby job over its cursor range in keyset sub-batches, cursors on the job row" do
    install
    BackfillCiStages.seen = []
    BackfillCiStages.sub_batches = []
    PG.connect(url) do |c|
      c.exec("UPDATE batched_background_migrations SET status = 0 WHERE id <> #{ids[:cursor]}")
      # Ids 1..20 are in partition 100, 5..9 also in 101; the range ends at [9, 101].
      c.exec("INSERT INTO ci_stages (id, partition_id) SELECT i, 101 FROM generate_series(5, 9) i")
      c.exec("UPDATE batched_background_migrations SET max_cursor = '[9, 101]' WHERE id = #{ids[:cursor]}")
    end
    worker = SchemaFence::Worker.new(database: :main, url:)
    started = []
    subscription = ActiveSupport::Notifications.subscribe("batch_start.schema_fence") { |*, payload| started << payload }
    begin
      Batches.drain(worker)
    ensure
      ActiveSupport::Notifications.unsubscribe(subscription)
    end
    expect(SchemaFence::Migrations.on(url).find { |m| m.id == ids[:cursor] }.status).to eq(:finished)
    # The batch's keys are its cursors in the events (its min_value/max_value are 0).
    expect(started.map { |p| p.slice(:min_cursor, :max_cursor) }).to eq([{ min_cursor: [1, 100], max_cursor: [9, 101] }])
    expect(BackfillCiStages.seen).to eq([[[1, 100], [9, 101]]])
    expect(BackfillCiStages.sub_batches).to eq([8, 6]), "sub-batches of 8 rows in keyset order"
    done = PG.connect(url) { |c| c.exec("SELECT id, partition_id FROM ci_stages WHERE done = 1 ORDER BY 1, 2").values }
    expect(done).to eq((1..9).flat_map { |i| i >= 5 ? [[i, 100], [i, 101]] : [[i, 100]] }.map { |r| r.map(&:to_s) })
    expect(Batches.done_counts(url, "ci_stages")).to eq([11, 14, 0])
    job = PG.connect(url) do |c|
      c.exec("SELECT min_value, max_value, min_cursor::text, max_cursor::text FROM batched_background_migration_jobs " \
             "WHERE batched_background_migration_id = #{ids[:cursor]}").values
    end
    expect(job).to eq([[nil, nil, "[1, 100]", "[9, 101]"]])
  end
end
