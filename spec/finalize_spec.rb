# frozen_string_literal: true

RSpec.describe "ensure_batched_background_migration_is_finished", :postgres do
  include_context "with a Rails-like app"

  before do
    app.migration("create_tables", <<~RUBY)
      def up
        execute "CREATE TABLE ci_builds (id bigint PRIMARY KEY, done int NOT NULL DEFAULT 0)"
        execute "INSERT INTO ci_builds (id) SELECT generate_series(1, 300)"
      end
    RUBY
    app.migration("queue_backfill", <<~RUBY, restrict: :gitlab_ci)
      def up
        queue_batched_background_migration("IncrementDone", :ci_builds, :id, job_interval: 0, batch_size: 100)
      end
    RUBY
  end

  def ensure_finished(finalize: true)
    app.migration("finalize_backfill_#{finalize}", <<~RUBY, restrict: :gitlab_ci)
      def up
        ensure_batched_background_migration_is_finished(job_class_name: "IncrementDone", table_name: :ci_builds,
                                                        column_name: :id, job_arguments: [], finalize: #{finalize})
      end
    RUBY
  end

  it "finishes the migration inline on the database that owns it" do
    url = Clusters.fresh_database("finalize_owner")
    app.configure(main: url, ci: url, ci_database_tasks: false)
    ensure_finished
    output = app.migrate(:main)
    expect(output).to include("Finalizing batched background migration")
    expect(SchemaFence::Migrations.on(url).first.status).to eq(:finalized)
    expect(Batches.done_counts(url, "ci_builds")).to eq([0, 300, 0])
  end

  it "does nothing on a database where the migration was skipped" do
    main_url = Clusters.fresh_database("finalize_main", on: :main)
    ci_url = Clusters.fresh_database("finalize_ci", on: :ci)
    app.configure(main: main_url, ci: ci_url)
    ensure_finished
    output = app.migrate(:main)
    expect(output.scan("Migration skipped").size).to eq(2)
    expect(SchemaFence::Migrations.on(main_url).to_a).to be_empty
  end

  it "raises with the command to run when it may not finish it" do
    url = Clusters.fresh_database("finalize_refused")
    app.configure(main: url, ci: url, ci_database_tasks: false)
    ensure_finished(finalize: false)
    expect { app.migrate(:main) }
      .to raise_error(SchemaFence::MigrationNotFinishedError, /is active, not finished.*Worker\.for\(:main\)\.finish\(1\)/)
  end
end
