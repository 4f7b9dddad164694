# frozen_string_literal: true

require "rake"
require_relative "../demo/split_scenario"

RSpec.describe "the cutover rake tasks", :postgres do
  before do
    skip "needs throwaway clusters of its own (a replica): unset DATABASE_URL" if Clusters.external?
  end

  around do |example|
    scenario = SplitScenario.new(rows: 1_000, batch_size: 500, sub_batch_size: 500, pause_ms: 0, interval: 0)
    scenario.setup
    @scenario = scenario
    ENV["SOURCE_URL"] = scenario.source_url
    ENV["TARGET_URL"] = scenario.target_url
    example.run
  ensure
    ENV.delete("SOURCE_URL")
    ENV.delete("TARGET_URL")
    scenario.teardown
  end

  def run_task(name)
    rake = Rake::Application.new
    Rake.application = rake
    load File.expand_path("../lib/schema_fence/tasks/cutover.rake", __dir__)
    out = StringIO.new
    previous = $stdout
    $stdout = out
    rake[name].invoke
    out.string
  ensure
    $stdout = previous
  end

  def identities
    [@scenario.source_url, @scenario.target_url].map { |url| SchemaFence::Identity.read(url).to_h.slice(:name, :serves, :epoch) }
  end

  it "plan lists every step with its database and changes nothing" do
    before = identities
    output = run_task("schema_fence:cutover:plan")
    expect(output.lines.size).to eq(9)
    expect(output).to include("1. verify", "2. pause", "4. fence", "ci (replica)", "pg_promote() on the replica",
                              "9. resume")
    expect(output).to match(/fence .*ci_builds/)
    expect(identities).to eq(before)
    expect(PG.connect(@scenario.source_url) { |c| c.exec("SELECT to_regclass('schema_fence_cutover_log')").getvalue(0, 0) })
      .to be_nil
  end

  it "execute runs the steps and a second run finds them done; rollback undoes the split" do
    first = run_task("schema_fence:cutover:execute")
    expect(first).to match(/promote .* promoted with pg_promote\(\)/)
    expect(identities).to eq([{ name: "main", serves: %w[main sec], epoch: 1 }, { name: "ci", serves: ["ci"], epoch: 1 }])
    expect(first).to match(/write window of the moving tables \d+\.\d+s/)
    expect(run_task("schema_fence:cutover:execute").scan(" done ").size).to eq(9)
    SchemaFence.configure { |c| c.database(:main, url: @scenario.source_url) }
    expect(SchemaFence::Status.collect.to_text)
      .to match(/main: identity main serving main, sec, epoch 1, receives reverse replication schema_fence_reverse_main__ci/)
    SchemaFence.configuration.databases.clear
    rollback = run_task("schema_fence:cutover:rollback")
    expect(rollback).to include("merge", "drop_replication", "rollback finished")
    expect(identities).to eq([{ name: "main", serves: %w[main ci sec], epoch: 2 }, { name: "ci", serves: [], epoch: 2 }])
  end
end
