# frozen_string_literal: true

require "shellwords"
require "sidekiq"
begin
  # The app's Sidekiq loads sidekiq-cron where the stack has it; the spec needs it too to enqueue
  # the app's cron jobs itself (otherwise the first batch waits for the poller's next minute).
  require "sidekiq-cron"
rescue LoadError
  nil # Debian 13 has no package: the app runs schema_fence's clock, which ticks at startup
end

# A new user with a Rails app follows README.md's "Running it in a Rails app", and nothing else:
# every file this spec writes for schema_fence and every command it runs is taken from that
# section, in its order, from the install to Sidekiq, the cutover onto a streaming replica and the
# cleanup. What the user had before (a Rails app of the stack's version with a ci_builds table) is
# written by the spec; the Gemfile and Bundler are stood in for by the app's config/boot.rb; the
# app reaches its database through a Unix socket, as GitLab Omnibus does.
RSpec.describe "Following the README's Rails walk-through", :postgres do
  # The README's placeholders for the cutover's URLs, replaced by the servers' (see #placeholder).
  source_placeholder = "postgres://main-primary/app"
  target_placeholder = "postgres://ci-replica/app"
  define_method(:source_placeholder) { source_placeholder }
  define_method(:target_placeholder) { target_placeholder }

  # The section's fenced blocks, in order: [language, text].
  def self.blocks
    heading = "## Running it in a Rails app"
    text = File.read(File.expand_path("../README.md", __dir__))
    start = text.index(heading) or raise "README.md has no #{heading.inspect} section"
    section = text[start...(text.index(/^## /, start + heading.length) || text.length)]
    section.scan(/^ *```(\w*)\n(.*?)^ *```$/m).map { |lang, body| [lang, body.gsub(/^ {3}/, "")] }
  end

  before(:all) do
    skip "needs a cluster of its own (a streaming replica to cut over to): unset DATABASE_URL" if Clusters.external?

    @dir = Dir.mktmpdir("schema_fence-readme")
    @cluster = Clusters.start_cluster
    @database = "app_readme"
    @url = @cluster.create_database(@database)
    @app = RailsSkeleton.new(@dir, databases: { "main" => socket_settings(@cluster) })
    # The user's app as it was: an ApplicationRecord and a ci_builds table whose status to backfill.
    @app.write("app/models/application_record.rb", <<~RUBY)
      class ApplicationRecord < ActiveRecord::Base
        self.abstract_class = true
      end
    RUBY
    @app.write("db/migrate/20200101000000_create_ci_builds.rb", <<~RUBY)
      class CreateCiBuilds < ActiveRecord::Migration[#{RailsSkeleton::VERSION}]
        def up
          create_table :ci_builds do |t|
            t.string :status
          end
          execute "INSERT INTO ci_builds (status) SELECT CASE WHEN i % 10 = 0 THEN 'success' END " \\
                  "FROM generate_series(1, 2500) i"
        end
      end
    RUBY
    @ran = []
    self.class.blocks.each { |lang, body| follow(lang, body) }
  end

  after(:all) do
    FileUtils.rm_rf(@dir) if @dir && !ENV["README_SPEC_KEEP"]
    @replica&.stop
    @cluster&.stop
  end

  # database.yml settings reaching +cluster+ through its socket directory.
  def socket_settings(cluster)
    { host: cluster.dir, port: cluster.port, username: "postgres", database: @database }
  end

  def socket_url(cluster)
    SchemaFence::Connection.url_for_config(**socket_settings(cluster))
  end

  # The streaming replica that is to become ci, made when the README first names it.
  def replica
    @replica ||= @cluster.replica
  end

  def self.file_path(body)
    body.lines.first[%r{\A# ([\w./<>-]+)\s*\z}, 1]
  end

  # Writes a file block (its first line names the file) or runs a shell block's commands.
  def follow(lang, body)
    return run_commands(body) if lang == "sh"

    path = self.class.file_path(body)
    return if path.nil? || path == "Gemfile"

    write_file(path, body)
  end

  def write_file(path, body)
    body = database_yml(body) if path == "config/database.yml"
    if path.include?("<timestamp>")
      # The file a `bin/rails generate` of an earlier step made, which the user edits.
      path = @app.glob(path.sub("<timestamp>", "*")).fetch(0) { raise "no file #{path} was generated" }
    end
    @app.write(path, body)
  end

  # The README's entries with this spec's servers: main's socket, and the replica's for ci.
  def database_yml(body)
    settings = lambda do |cluster|
      socket_settings(cluster).map { |key, value| "#{key}: #{value}" }.join("\n    ")
    end
    body = body.sub("database: app_development\n    host: ci-replica", settings.call(replica)) if body.include?("ci-replica")
    body.sub("database: app_development", settings.call(@cluster))
  end

  def run_commands(body)
    body.lines.map { |line| line.strip.sub(/\s+#.*\z/, "") }.reject(&:empty?).each do |line|
      words = Shellwords.split(line)
      env = {}
      env.store(*words.shift.split("=", 2)) while words.first&.match?(/\A[A-Z_]+=/)
      started = Process.clock_gettime(Process::CLOCK_MONOTONIC)
      case words
      in ["bin/rails", *args] then @ran << [line, @app.rails!(*args, env: env.transform_values { |v| placeholder(v) })]
      in ["bundle", "exec", "sidekiq"] then @ran << [line, run_sidekiq_until_a_batch_ran]
      in ["bundle", "install"] then nil # Bundler stands aside: config/boot.rb puts the gem on the load path
      end
      took = Process.clock_gettime(Process::CLOCK_MONOTONIC) - started
      warn format("readme_spec: %<line>s took %<took>.1fs", line:, took:) if ENV["README_SPEC_TIMES"]
    end
  end

  def placeholder(value)
    case value
    when source_placeholder then socket_url(@cluster)
    when target_placeholder then socket_url(replica)
    else value
    end
  end

  # `bundle exec sidekiq` until its schedule has run main's first batch. With sidekiq-cron the spec
  # enqueues the cron jobs the initializer registered (what its poller does on the minute); on
  # schema_fence's clock the first tick comes at startup.
  def run_sidekiq_until_a_batch_ran
    log = File.join(@dir, "log", "sidekiq.log")
    FileUtils.mkdir_p(File.dirname(log))
    # A Redis database of its own: other specs' jobs (and their retries) stay out of this app's queues.
    redis = RedisServer.url.sub(%r{/\d+\z}, "/5")
    pid = @app.spawn_in_app("sidekiq", "-c", "2", log:, env: { "REDIS_URL" => redis })
    Sidekiq.configure_client { |c| c.redis = { url: redis } }
    wait_for("main's first batch to finish under Sidekiq (log: #{log})") do
      enqueue_cron_jobs if defined?(Sidekiq::Cron::Job)
      jobs_done(@url).positive?
    end
    Process.kill(:TERM, pid)
    Process.wait(pid)
    pid = nil
    File.read(log)
  ensure
    if pid
      Process.kill(:KILL, pid)
      Process.wait(pid)
    end
  end

  def enqueue_cron_jobs
    @cron_jobs = Sidekiq::Cron::Job.all.select { |job| job.name.start_with?("schema_fence: ") }
    @cron_jobs.each(&:enque!)
  end

  def wait_for(what, timeout: 90)
    deadline = Process.clock_gettime(Process::CLOCK_MONOTONIC) + timeout
    until yield
      raise "timed out after #{timeout}s waiting for #{what}" if Process.clock_gettime(Process::CLOCK_MONOTONIC) > deadline

      sleep 0.5
    end
  end

  def jobs_done(url)
    PG.connect(url) { |c| c.exec("SELECT count(*) FROM batched_background_migration_jobs WHERE status = 3").getvalue(0, 0).to_i }
  end

  def statuses(url)
    PG.connect(url) { |c| c.exec("SELECT status, count(*) FROM ci_builds GROUP BY status ORDER BY status").values.to_h }
  end

  def output_of(command, occurrence: 0)
    @ran.select { |c, _| c == command }.fetch(occurrence).last.then { |r| r.respond_to?(:out) ? r.out : r }
  end

  let(:cutover_env) { "SOURCE_URL=#{source_placeholder} TARGET_URL=#{target_placeholder}" }

  it "takes the files and commands from the README, in order" do
    expect(@ran.map(&:first)).to eq(["bin/rails generate schema_fence:install", "bin/rails db:migrate",
                                     "bin/rails generate migration QueueBackfillCiBuildsStatus",
                                     "bin/rails db:migrate", "bin/rails schema_fence:status", "bundle exec sidekiq",
                                     "bin/rails runner 'p SchemaFence::Worker.for(:main).run_once.status'",
                                     "bin/rails schema_fence:status",
                                     "#{cutover_env} bin/rails schema_fence:cutover:plan",
                                     "#{cutover_env} bin/rails schema_fence:cutover:execute",
                                     "bin/rails 'schema_fence:finalize[ci_1]'", "bin/rails schema_fence:status",
                                     "bin/rails schema_fence:cleanup", "DELETE=1 bin/rails schema_fence:cleanup"])
    expect(@app.read("lib/gitlab/database/gitlab_schemas.yml")).to include("ci_builds: :gitlab_ci")
    expect(@app.glob("db/migrate/*_queue_backfill_ci_builds_status.rb").size).to eq(1)
    expect(@app.read("config/database.yml")).to include("host: #{@cluster.dir}", "host: #{replica.dir}")
  end

  it "installs schema_fence on the app's database: main, serving main and ci until the split" do
    expect(output_of("bin/rails db:migrate")).to include("schema_fence installed: main serving main, ci (epoch 0)")
  end

  it "queues the migration tagged gitlab_ci, listed as main_1" do
    expect(output_of("bin/rails db:migrate", occurrence: 1))
      .to include("Batched background migration BackfillCiBuildsStatus on ci_builds queued, tagged gitlab_ci")
    expect(output_of("bin/rails schema_fence:status"))
      .to match(%r{\| main_1 \| BackfillCiBuildsStatus \| ci_builds\.id \| gitlab_ci \| active[^|]* \| \[ +\] 0% \| 0 done / 0})
  end

  it "runs main's first batch in Sidekiq on its schedule, ci's scheduler idling while ci shares main" do
    log = output_of("bundle exec sidekiq")
    expect(log).not_to match(/no connection configured|Job raised exception|Error/)
    expect(@cron_jobs.map(&:name)).to include(/MainBatchedMigrationSchedulerWorker/) if defined?(Sidekiq::Cron::Job)
    expect(output_of("bin/rails runner 'p SchemaFence::Worker.for(:main).run_once.status'"))
      .to eq(":nothing\n") # the next batch is due a job_interval (2 minutes) after Sidekiq's
    expect(output_of("bin/rails schema_fence:status", occurrence: 1))
      .to match(%r{\| main_1 \| BackfillCiBuildsStatus .*\| active: waiting for its interval[^|]* \| \[=+ +\] 4\d% \| 1 done /})
  end

  it "cuts ci over onto the replica, each step on its database" do
    expect(output_of("#{cutover_env} bin/rails schema_fence:cutover:plan").lines.size).to eq(9)
    expect(output_of("#{cutover_env} bin/rails schema_fence:cutover:execute")).to match(/cutover finished in/)
    expect(SchemaFence::Identity.read(@url).to_h).to include(name: "main", serves: %w[main], epoch: 1)
    expect(SchemaFence::Identity.read(replica.url(@database)).to_h).to include(name: "ci", serves: %w[ci], epoch: 1)
  end

  it "finishes the half-done migration on ci from its last finished batch, every row once" do
    expect(output_of("bin/rails 'schema_fence:finalize[ci_1]'"))
      .to include("ci_1 (BackfillCiBuildsStatus on ci_builds) finalized")
    expect(output_of("bin/rails schema_fence:status", occurrence: 2))
      .to match(%r{\| ci_1 \| BackfillCiBuildsStatus .*\| finalized +\| \[=+\] 100% \| 3 done / 0 failed \|})
    expect(statuses(replica.url(@database))).to eq("created" => "2250", "success" => "250")
    # main's copy of ci_builds follows ci's through the reverse replication (for a rollback), and the
    # app cannot write to it
    expect(statuses(@url)).to eq("created" => "2250", "success" => "250")
    expect { PG.connect(@url) { |c| c.exec("UPDATE ci_builds SET status = 'x' WHERE id = 1") } }
      .to raise_error(PG::Error, /locked|schema_fence/i)
  end

  it "lists the stale rows on each side, then deletes them" do
    expect(output_of("bin/rails schema_fence:cleanup")).to match(/main: 1 stale row\(s\)\n  main_1 BackfillCiBuildsStatus/)
    expect(output_of("DELETE=1 bin/rails schema_fence:cleanup")).to match(/main: 1 stale row\(s\) deleted/)
    expect(PG.connect(@url) { |c| c.exec("SELECT count(*) FROM batched_background_migrations").getvalue(0, 0) }).to eq("0")
  end
end
