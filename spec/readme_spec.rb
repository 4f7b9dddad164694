# frozen_string_literal: true

require "shellwords"

# A new user with a Rails app follows README.md's "Running it in a Rails app", and nothing else:
# every file this spec writes for schema_fence and every command it runs is taken from that
# section, in its order. What the user had before (a Rails 6.1 app with a ci_builds table) is
# written by the spec; the Gemfile and Bundler are stood in for by the app's config/boot.rb.
RSpec.describe "Following the README's Rails walk-through", :postgres do
  # The section's fenced blocks, in order: [language, text].
  def self.blocks
    heading = "## Running it in a Rails app"
    text = File.read(File.expand_path("../README.md", __dir__))
    start = text.index(heading) or raise "README.md has no #{heading.inspect} section"
    section = text[start...(text.index(/^## /, start + heading.length) || text.length)]
    section.scan(/^ *```(\w*)\n(.*?)^ *```$/m).map { |lang, body| [lang, body.gsub(/^ {3}/, "")] }
  end

  # The commands of the section a user runs in development: bin/rails ones. The others need what a
  # spec has not (Bundler and the network, a Sidekiq server, a streaming replica).
  def runnable?(command)
    command.start_with?("bin/rails ")
  end

  before(:all) do
    @dir = Dir.mktmpdir("schema_fence-readme")
    @url = Clusters.fresh_database("readme")
    @app = RailsSkeleton.new(@dir, databases: { "main" => @url })
    # The user's app as it was: an ApplicationRecord and a ci_builds table whose status to backfill.
    @app.write("app/models/application_record.rb", <<~RUBY)
      class ApplicationRecord < ActiveRecord::Base
        self.abstract_class = true
      end
    RUBY
    @app.write("db/migrate/20200101000000_create_ci_builds.rb", <<~RUBY)
      class CreateCiBuilds < ActiveRecord::Migration[6.1]
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

  after(:all) { FileUtils.rm_rf(@dir) }

  def self.file_path(body)
    body.lines.first[%r{\A# ([\w./<>-]+)\s*\z}, 1]
  end

  # Writes a file block (its first line names the file) or runs a shell block's bin/rails lines.
  def follow(lang, body)
    return run_commands(body) if lang == "sh"

    path = self.class.file_path(body)
    return if path.nil? || path == "Gemfile"

    write_file(path, body)
  end

  def write_file(path, body)
    body = body.sub("database: app_development", "url: #{@url}") if path == "config/database.yml"
    if path.include?("<timestamp>")
      # The file a `bin/rails generate` of an earlier step made, which the user edits.
      path = @app.glob(path.sub("<timestamp>", "*")).fetch(0) { raise "no file #{path} was generated" }
    end
    @app.write(path, body)
  end

  def run_commands(body)
    body.lines.map { |line| line.strip.sub(/\s+#.*\z/, "") }.reject(&:empty?).each do |command|
      next unless runnable?(command)

      @ran << [command, @app.rails!(*Shellwords.split(command).drop(1))]
    end
  end

  def output_of(command, occurrence: 0)
    @ran.select { |c, _| c == command }.fetch(occurrence).last.out
  end

  it "takes the files and commands from the README, in order" do
    expect(@ran.map(&:first)).to eq(["bin/rails generate schema_fence:install", "bin/rails db:migrate",
                                     "bin/rails generate migration QueueBackfillCiBuildsStatus",
                                     "bin/rails db:migrate", "bin/rails schema_fence:status",
                                     "bin/rails runner 'p SchemaFence::Worker.for(:main).run_once.status'",
                                     "bin/rails 'schema_fence:finalize[main_1]'", "bin/rails schema_fence:status",
                                     "bin/rails schema_fence:cleanup"])
    expect(@app.read("lib/gitlab/database/gitlab_schemas.yml")).to include("ci_builds: :gitlab_ci")
    expect(@app.glob("db/migrate/*_queue_backfill_ci_builds_status.rb").size).to eq(1)
  end

  it "installs schema_fence on the app's database: main, serving main and ci until the split" do
    expect(output_of("bin/rails db:migrate")).to include("schema_fence installed: main serving main, ci (epoch 0)")
    expect(SchemaFence::Identity.read(@url).to_h).to include(name: "main", serves: %w[main ci], epoch: 0)
  end

  it "queues the migration tagged gitlab_ci, listed as main_1" do
    expect(output_of("bin/rails db:migrate", occurrence: 1))
      .to include("Batched background migration BackfillCiBuildsStatus on ci_builds queued, tagged gitlab_ci")
    expect(output_of("bin/rails schema_fence:status"))
      .to match(%r{\| main_1 \| BackfillCiBuildsStatus \| ci_builds\.id \| gitlab_ci \| active +\| \[ +\] 0% \| 0 done / 0})
  end

  it "runs a batch with a worker, then the rest, and the data is backfilled once" do
    expect(output_of("bin/rails runner 'p SchemaFence::Worker.for(:main).run_once.status'")).to eq(":ran\n")
    expect(output_of("bin/rails 'schema_fence:finalize[main_1]'"))
      .to eq("main_1 (BackfillCiBuildsStatus on ci_builds) finalized\n")
    expect(output_of("bin/rails schema_fence:status", occurrence: 1))
      .to match(%r{\| main_1 \| BackfillCiBuildsStatus .*\| finalized +\| \[=+\] 100% \| 3 done / 0 failed \|})
    counts = PG.connect(@url) do |c|
      c.exec("SELECT status, count(*) FROM ci_builds GROUP BY status ORDER BY status").values.to_h
    end
    expect(counts).to eq("created" => "2250", "success" => "250")
  end
end
