# frozen_string_literal: true

require "sidekiq"
require "schema_fence/sidekiq"
require "rbconfig"

RSpec.describe "Sidekiq workers", :postgres do
  before { Batches.configure }

  let(:boot) { File.expand_path("fixtures/sidekiq_app/boot.rb", __dir__) }

  it "complete a migration on each database, each on its own, in a real Sidekiq process" do
    main_url = Batches.database("sidekiq_main", name: "main", serves: %w[main], rows: 400, on: :main)
    ci_url = Batches.database("sidekiq_ci", name: "ci", serves: %w[ci], rows: 400, on: :ci)
    main_id = Batches.queue(main_url, "IncrementProjects", "projects", :gitlab_main, batch_size: 100)
    ci_id = Batches.queue(ci_url, "SqlIncrementCiBuilds", "ci_builds", :gitlab_ci, batch_size: 100)

    env = { "REDIS_URL" => RedisServer.url, "MAIN_DATABASE_URL" => main_url, "CI_DATABASE_URL" => ci_url }
    sidekiq = spawn(env, "sidekiq", "-r", boot, "-c", "2", "-q", "default", out: File::NULL, err: File::NULL)
    Sidekiq.configure_client { |c| c.redis = { url: RedisServer.url } }

    deadline = Process.clock_gettime(Process::CLOCK_MONOTONIC) + 60
    until [Batches.status(main_url, main_id), Batches.status(ci_url, ci_id)] == %i[finished finished]
      raise "migrations did not finish in 60s" if Process.clock_gettime(Process::CLOCK_MONOTONIC) > deadline

      # What sidekiq-cron does every minute, faster.
      %w[MainScheduler CiScheduler].each { |klass| Sidekiq::Client.push("class" => klass, "args" => []) }
      sleep 0.3
    end

    expect(Batches.done_counts(main_url, "projects")).to eq([0, 400, 0])
    expect(Batches.done_counts(ci_url, "ci_builds")).to eq([0, 400, 0])
    expect(Batches.done_counts(main_url, "ci_builds")).to eq([400, 0, 0])
    expect(Batches.done_counts(ci_url, "projects")).to eq([400, 0, 0])
  ensure
    if sidekiq
      Process.kill(:TERM, sidekiq)
      Process.wait(sidekiq)
    end
  end

  it "complete without sidekiq-cron: two Sidekiq processes on schema_fence's clock" do
    main_url = Batches.database("clock_main", name: "main", serves: %w[main], rows: 300, on: :main)
    ci_url = Batches.database("clock_ci", name: "ci", serves: %w[ci], rows: 300, on: :ci)
    main_id = Batches.queue(main_url, "IncrementProjects", "projects", :gitlab_main, batch_size: 100)
    ci_id = Batches.queue(ci_url, "SqlIncrementCiBuilds", "ci_builds", :gitlab_ci, batch_size: 100)

    env = { "REDIS_URL" => RedisServer.url, "MAIN_DATABASE_URL" => main_url, "CI_DATABASE_URL" => ci_url,
            "SCHEMA_FENCE_CLOCK" => "1" }
    sidekiqs = Array.new(2) { spawn(env, "sidekiq", "-r", boot, "-c", "2", "-q", "default", out: File::NULL, err: File::NULL) }

    deadline = Process.clock_gettime(Process::CLOCK_MONOTONIC) + 90
    until [Batches.status(main_url, main_id), Batches.status(ci_url, ci_id)] == %i[finished finished]
      raise "migrations did not finish in 90s on the clock" if Process.clock_gettime(Process::CLOCK_MONOTONIC) > deadline

      sleep 0.3
    end
    expect(Batches.done_counts(main_url, "projects")).to eq([0, 300, 0])
    expect(Batches.done_counts(ci_url, "ci_builds")).to eq([0, 300, 0])
  ensure
    sidekiqs&.each do |pid|
      Process.kill(:TERM, pid)
      Process.wait(pid)
    end
  end

  it "enqueue the schedulers once per period across processes: a clock that loses the period enqueues nothing" do
    Sidekiq.configure_client { |c| c.redis = { url: RedisServer.url } }
    schedulers = ["ClockProbe#{rand(1 << 30)}"]
    first = SchemaFence::Sidekiq::Clock.new(schedulers, every: 30)
    second = SchemaFence::Sidekiq::Clock.new(schedulers, every: 30)
    expect([first.tick, second.tick, first.tick]).to eq([true, false, false])
    probes = Sidekiq::Queue.new("default").select { |job| job.klass == schedulers.first }
    expect(probes.size).to eq(1)
  ensure
    probes&.each(&:delete)
  end
end
