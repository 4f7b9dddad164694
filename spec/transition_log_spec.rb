# frozen_string_literal: true

RSpec.describe SchemaFence::TransitionLog, :postgres do
  before { Batches.configure }
  after { Operating.reset }

  def worker(url)
    SchemaFence::Worker.new(database: :main, url:)
  end

  let(:url) { Batches.database("transitions", name: "main", serves: %w[main ci], rows: 100) }

  it "logs a Ruby job's failure with the exception's class and message, as GitLab's log has them" do
    id = Batches.queue(url, "FailWithSqlError", "ci_builds", :gitlab_ci, batch_size: 100)
    worker(url).run_once
    failed = described_class.recent(url, [id])[id]
    expect(failed.map { |t| [t.previous_status, t.next_status] }).to eq([%i[running failed], %i[pending running]])
    expect(failed.first.exception_class).to eq("ActiveRecord::StatementInvalid")
    expect(failed.first.exception_message).to start_with("PG::DivisionByZero")
  end

  it "shows each migration's latest status changes in status --json" do
    id = Batches.queue(url, "IncrementDone", "ci_builds", :gitlab_ci, batch_size: 50)
    Batches.drain(worker(url))
    Operating.configure(main: url)
    json = JSON.parse(SchemaFence::Status.collect.to_json)
    shown = json["databases"].first["migrations"].find { |m| m["row_id"] == id }["transitions"]
    expect(shown.map { |t| [t["previous_status"], t["next_status"]] })
      .to eq([%w[running succeeded], %w[pending running], %w[running succeeded], %w[pending running]])
    expect(shown.first).to include("exception_class" => nil, "created_at" => a_string_ending_with("Z"))
  end

  it "drops the months past the configured retention and refuses one under a month" do
    PG.connect(url) do |c|
      c.exec(<<~SQL)
        CREATE TABLE batched_background_migration_job_transition_logs_old
          PARTITION OF batched_background_migration_job_transition_logs
          FOR VALUES FROM (date_trunc('month', now()) - interval '3 months') TO (date_trunc('month', now()) - interval '2 months')
      SQL
    end
    expect(described_class.maintain(url, retain_months: 6).dropped).to eq([])
    expect(described_class.maintain(url, retain_months: 2).dropped)
      .to eq(["batched_background_migration_job_transition_logs_old"])
    expect { described_class.maintain(url, retain_months: 0) }.to raise_error(SchemaFence::Error, /at least one month/)
  end

  it "is maintained for every configured database by rake schema_fence:transition_log:maintain" do
    Operating.configure(main: url)
    SchemaFence.configuration.transition_log_retain_months = 1
    PG.connect(url) do |c|
      c.exec(<<~SQL)
        CREATE TABLE batched_background_migration_job_transition_logs_old
          PARTITION OF batched_background_migration_job_transition_logs
          FOR VALUES FROM (date_trunc('month', now()) - interval '3 months') TO (date_trunc('month', now()) - interval '2 months')
      SQL
    end
    run = Operating.rake("schema_fence:transition_log:maintain")
    expect(run.exit_status).to eq(0)
    expect(run.out).to eq("main: 0 partition(s) created, 1 dropped (batched_background_migration_job_transition_logs_old)\n")
  ensure
    SchemaFence.configuration.transition_log_retain_months = 6
  end
end
