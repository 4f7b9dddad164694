# frozen_string_literal: true

require_relative "../demo/split_scenario"

RSpec.describe "the split of ci out of main, with workers running through the cutover", :postgres do
  before do
    skip "needs throwaway clusters of its own (a replica): unset DATABASE_URL" if Clusters.external?
  end

  # GitLab's three databases (sec keeps sharing main), worker processes serving all three, and an
  # application writing a ci table and a sec table through the cutover. bin/test runs 3 seeds;
  # CUTOVER_SEEDS=10 (or more) runs the slower variant.
  seeds = Integer(ENV.fetch("CUTOVER_SEEDS", "3"))

  seeds.times do |seed|
    fraction = Random.new(seed).rand(0.15..0.6).round(2)

    it "continues every half-done migration on the right database, once (seed #{seed}, cutover at #{fraction})" do
      scenario = SplitScenario.new(rows: 200_000)
      begin
        scenario.setup
        scenario.start_workers
        scenario.start_writer
        scenario.wait_for_progress(fraction)
        scenario.cutover
        scenario.wait_until_finished
        # The application keeps writing on the new ci a moment after the re-point.
        sleep 0.3
        scenario.stop_workers

        rows = scenario.rows
        # SQL and Ruby jobs alike: each copy a database owns is processed exactly once there.
        SplitScenario.owned.each do |database, table|
          expect([database, table, scenario.counts(scenario.url_of(database), table)])
            .to eq([database, table, [0, rows, 0]])
        end
        expect(scenario.batches_on_wrong_database).to eq(0)
        expect(scenario.lock_writes_fired).to eq(0)
        expect(scenario.cutover_outcomes.map(&:step))
          .to eq(%i[verify pause drain fence catch_up promote stamp lock_writes resume])

        # The application: no acknowledged write lost, sec never refused nor locked on main.
        writes = scenario.application_writes
        expect(writes).to include(ci_lost: 0, ci_acknowledged_on_main_and_absent_on_ci: 0, sec_lost: 0, sec_refused: 0)
        expect(writes[:ci_acknowledged]).to be > 100
        expect(writes[:sec_acknowledged]).to be > 100
        expect(scenario.sec_tables_locked_on_main).to eq(0)
        expect(scenario.worker_log_lines(/MisroutedConnectionError/)).to eq(0)
        windows = scenario.windows
        expect(windows.write).to be < windows.claim_pause

        listed = scenario.stale
        expect(listed.transform_values { |rows_| rows_.map(&:gitlab_schema) })
          .to eq("main" => %i[gitlab_ci gitlab_ci],
                 "ci" => %i[gitlab_main gitlab_main gitlab_sec gitlab_sec])
        scenario.stale(delete: true)
        expect(scenario.stale.values.flatten).to be_empty
      ensure
        scenario.teardown
      end
    end
  end

  it "refuses a ci connection still pointed at the source after the split, running nothing" do
    scenario = SplitScenario.new(rows: 2_000, batch_size: 500, sub_batch_size: 500, pause_ms: 0, interval: 0)
    begin
      scenario.setup
      scenario.cutover
      jobs = lambda {
        PG.connect(scenario.source_url) do |c|
          c.exec("SELECT count(*) FROM batched_background_migration_jobs").getvalue(0, 0)
        end
      }
      before = jobs.call
      misrouted = SchemaFence::Worker.new(database: :ci, url: scenario.source_url)
      expect do
        misrouted.run_once
      end.to raise_error(SchemaFence::MisroutedConnectionError, /"ci" reached the database stamped "main"/)
      expect(jobs.call).to eq(before)
      expect(scenario.counts(scenario.source_url, "ci_builds")).to eq([2_000, 0, 0])
    ensure
      scenario.teardown
    end
  end
end
