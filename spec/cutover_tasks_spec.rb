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
    expect(output.lines.size).to eq(7)
    expect(output).to include("1. pause", "ci (replica)", "pg_promote() on the replica", "7. resume")
    expect(identities).to eq(before)
    expect(PG.connect(@scenario.source_url) { |c| c.exec("SELECT to_regclass('schema_fence_cutover_log')").getvalue(0, 0) })
      .to be_nil
  end

  it "execute runs the steps and a second run finds them done; cleanup lists the stale rows" do
    first = run_task("schema_fence:cutover:execute")
    expect(first).to match(/promote .* promoted with pg_promote\(\)/)
    expect(identities).to eq([{ name: "main", serves: ["main"], epoch: 1 }, { name: "ci", serves: ["ci"], epoch: 1 }])
    expect(run_task("schema_fence:cutover:execute").scan(" done ").size).to eq(7)
    expect { run_task("schema_fence:cutover:rollback") }
      .to raise_error(SystemExit).and output(/\Aschema_fence: cutover main->ci is past the promotion/).to_stderr
  end
end
