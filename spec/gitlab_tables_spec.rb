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

  it "lists every row, the cursor row as not runnable with why" do
    install
    rows = SchemaFence::Migrations.on(url).to_a
    expect(rows.size).to eq(6)
    cursor = rows.find { |m| m.id == ids[:cursor] }
    expect(cursor.to_h).to include(min_value: nil, max_value: nil, min_cursor: [1, 100], max_cursor: [20, 100])
    expect(cursor.runnable?).to be(false)
    expect(cursor.not_runnable).to match(/cursor-batched/)
    expect(rows.reject { |m| m.id == ids[:cursor] }).to all(be_runnable)
    Operating.configure(main: url)
    expect(SchemaFence::Status.collect.to_text).to match(/main_#{ids[:cursor]} .*active, not runnable: cursor-batched/)
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
      .to eq(%i[paused failed active finished])
    expect(Batches.done_counts(url, "ci_builds")).to eq([0, 300, 0])
    expect(Batches.done_counts(url, "projects")).to eq([0, 200, 0])
    expect(Batches.done_counts(url, "ci_stages")).to eq([20, 0, 0])
  end
end
