# frozen_string_literal: true

require_relative "../demo/split_scenario"

RSpec.describe "a rollback after the split, with workers and the application running on both sides", :postgres do
  before do
    skip "needs throwaway clusters of its own (replicas): unset DATABASE_URL" if Clusters.external?
  end

  # Everything on main again: the tables of every gitlab_schema.
  everything_on_main = SplitScenario::TABLES.keys.map { |table| ["main", table] }

  # bin/test runs 3 seeds; CUTOVER_SEEDS=10 (or more) runs more.
  seeds = Integer(ENV.fetch("CUTOVER_SEEDS", "3"))

  seeds.times do |seed|
    random = Random.new(1000 + seed)
    split_at = random.rand(0.15..0.35).round(2)
    rollback_at = (split_at + random.rand(0.15..0.4)).round(2)

    it "loses no write the new ci took and runs no key twice (seed #{seed}: split at #{split_at}, " \
       "rolled back at #{rollback_at})" do
      scenario = SplitScenario.new(rows: 40_000, batch_size: 2_000, sub_batch_size: 500, pause_ms: 0, interval: 1)
      begin
        scenario.setup
        scenario.start_workers
        scenario.start_writer
        scenario.wait_for_progress(split_at)
        scenario.cutover
        # Both sides work: the new ci takes batches and the application's ci writes.
        scenario.wait_until(timeout: 120, what: "ci's progress #{rollback_at}") do
          (scenario.progress[%w[ci ci_builds]]&.first || 0) >= rollback_at
        end
        outcomes = scenario.rollback
        expect(outcomes.map(&:step)).to eq(SchemaFence::Cutover.rollback_steps.map(&:to_sym))
        scenario.wait_until_finished(owned: everything_on_main)
        sleep 0.3 # the application writes on main again a moment after the re-point
        scenario.stop_workers

        # Every key of every migration once, counting the new ci's work replicated back.
        everything_on_main.each do |_, table|
          expect([table, scenario.counts(scenario.source_url, table)]).to eq([table, [0, scenario.rows, 0]])
        end
        writes = scenario.application_writes(ci_owner: scenario.source_url)
        expect(writes).to include(ci_lost: 0, sec_lost: 0, sec_refused: 0)
        expect(writes[:ci_acknowledged]).to be > 100

        source = SchemaFence::Identity.read(scenario.source_url)
        target = SchemaFence::Identity.read(scenario.target_url)
        expect([source.serves, target.serves]).to eq([%w[main ci sec], []])
        expect { SchemaFence::Worker.new(database: :ci, url: scenario.target_url).run_once }
          .to raise_error(SchemaFence::MisroutedConnectionError, /retired/)

        # A second split works.
        replica_url = scenario.new_replica
        SchemaFence::Cutover.new(source_url: scenario.source_url, target_url: replica_url).execute
        expect(SchemaFence::Identity.read(replica_url).to_h.slice(:name, :serves)).to eq(name: "ci", serves: ["ci"])
      ensure
        scenario.teardown
      end
    end
  end
end
