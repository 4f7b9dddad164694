# frozen_string_literal: true

require "sidekiq"
require "sidekiq/api"

# bin/test runs it for SOAK_SECONDS=40 (about two minutes in all); SOAK_SECONDS=1200 is the
# twenty-minute soak, SOAK_SEED=N replays one run's faults.
RSpec.describe "a soak: two Sidekiq processes serving main and ci, through faults and a cutover", :postgres do
  before do
    skip "needs throwaway clusters of its own (a replica, restarts): unset DATABASE_URL" if Clusters.external?
    Batches.configure
    # Sidekiq 6.4 talks through redis-rb, whose deprecation notices flood the output; Sidekiq 7 has
    # redis-client instead, and no Redis constant.
    Redis.silence_deprecations = true if defined?(Redis) && Redis.respond_to?(:silence_deprecations=)
  end

  seconds = Integer(ENV.fetch("SOAK_SECONDS", "40"))
  seed = Integer(ENV.fetch("SOAK_SEED", Random.new_seed.to_s[-6..]))

  it "processes every key of every migration exactly once, on the database that owns it (seed #{seed})" do
    soak = Soak.new(seed:, seconds:)
    puts "\n  soak seed #{seed}: #{seconds}s, #{SoakPlan::TABLES.size} migrations of #{soak.rows} keys " \
         "(SOAK_SEED=#{seed} replays it)"
    begin
      soak.setup
      soak.start
      cutover_at = Random.new(seed).rand(0.3..0.5).round(2)
      soak.wait_until("progress #{cutover_at} on main", timeout: seconds * 4) { soak.progress >= cutover_at }
      soak.cutover
      soak.wait_until("every migration finished", timeout: seconds * 6) { soak.finished? }
      soak.stop

      SoakPlan::TABLES.each_key do |table|
        SoakPlan.owners(table).each do |owner|
          expect([owner, table, soak.key_counts(owner, table)]).to eq([owner, table, [0, 0]])
        end
      end
      %w[main ci].each do |database|
        max_attempts, failed_migrations, write_locked, = soak.tracking_facts(database)
        expect([database, failed_migrations, write_locked]).to eq([database, 0, 0])
        expect(max_attempts).to be <= Soak::MAX_ATTEMPTS
      end
      expect(soak.batches_on_wrong_database).to eq(0)
      expect(soak.log_lines(/ConnectionTimeoutError/)).to eq(0)
      expect(soak.log_lines(/JobConnectionMismatchError/)).to eq(0)

      connections = soak.samples.flat_map { |s| s[:connections].values }.compact
      # Two processes, each with a runner and a pool of at most 5 per database, and this process.
      expect(connections.max).to be <= 14
      report(soak)
    ensure
      soak.teardown
    end
  end

  def report(soak)
    rss = soak.samples.map { |s| s[:rss] }.reject(&:empty?)
    repeats = SoakPlan::TABLES.keys.sum { |t| SoakPlan.owners(t).sum { |o| soak.repeated_keys(o, t) } }
    jobs = %w[main ci].to_h { |db| [db, soak.tracking_facts(db).last] }
    puts "  soak seed #{soak.seed}: faults #{soak.events.tally}; jobs #{jobs}; keys redone after a fault #{repeats}"
    puts "  soak seed #{soak.seed}: RSS KiB first #{rss.first} last #{rss.last} max #{rss.flatten.max}; " \
         "connections max main #{soak.samples.filter_map { |s| s[:connections]['main'] }.max} " \
         "ci #{soak.samples.filter_map { |s| s[:connections]['ci'] }.max}"
  end
end
