# frozen_string_literal: true

require "open3"
require "tmpdir"

# model/check runs Spin on model/cutover.pml (docs/model.md). These examples run it as bin/test
# does, and with planted bugs, to show that the check passes on the protocol as built and fails,
# naming the fault in its trail, when the protocol is broken.
RSpec.describe "The model check of the cutover (model/check)" do
  let(:check) { File.expand_path("../model/check", __dir__) }

  # The model does not depend on the stack: it runs where Debian's spin is (bin/test's Debian 12
  # part); the Debian 13 root has no spin.
  before do
    unless system("command -v spin >/dev/null 2>&1")
      skip "needs Debian's spin package (the model check runs on the Debian 12 stack)"
    end
  end

  # Runs model/check; returns its output, whether it passed, and the trail of the failed run.
  def model_check(runs, *defines)
    Dir.mktmpdir("schema_fence_model") do |work|
      args = defines.flat_map { |d| ["-D", d] }
      output, status = Open3.capture2e({ "MODEL_RUNS" => runs, "MODEL_WORK" => work }, check, *args)
      trails = Dir[File.join(work, "*", "trail.txt")].map { |f| File.read(f) }.join
      [output, status.success?, trails]
    end
  end

  it "explores every reachable state of the small configuration with every fault and finds no violation" do
    output, passed, = model_check("safety")
    expect(passed).to be(true), output
    expect(output).to match(%r{model/check safety\s+states \d+, depth \d+, memory [\d.]+ MB, time [\d.]+ s, errors 0})
  end

  it "catches the old order (no fence before the catch-up, write locks after the stamp): a write is lost" do
    output, passed, trail = model_check("safety", "BUG_OLD_ORDER", "UNWATCHED_ONE_WRITABLE")
    expect(passed).to be(false)
    expect(output).to match(/errors 1/)
    # The trail, replayed with spin -t: the writer's write acknowledged on the source, then lost.
    expect(trail).to match(/INVARIANT lost_write: acknowledged write \d is lost: it is not on database 1/)
    expect(trail).to include("acked = (acked|(1<<w))")
    expect(trail).to include("phys_on = 0")
  end

  it "catches the old order through the first invariant it breaks when every invariant is watched" do
    output, passed, trail = model_check("safety", "BUG_OLD_ORDER")
    expect(passed).to be(false), output
    expect(trail).to match(/INVARIANT (one_writable|lost_write)/)
  end

  it "catches a completion that ignores a lost lease: a range completed by two leases" do
    output, passed, trail = model_check("safety-races", "BUG_COMPLETE_NO_LEASE")
    expect(passed).to be(false), output
    expect(trail).to match(/INVARIANT completed_twice: range \d on database \d was completed under another lease/)
  end

  it "catches a claim that skips the epoch check: a worker claims with the epoch of an older identity" do
    output, passed, trail = model_check("safety-races", "BUG_NO_EPOCH_CHECK")
    expect(passed).to be(false), output
    expect(trail).to match(/INVARIANT old_epoch: worker \d claimed range \d on database \d with epoch \d, the identity has \d/)
  end

  it "catches a rollback whose unlock leaves a fence laid by a cutover stopped before its lock step" do
    # The first version's bug, found by this model: the rollback finished, the source serves ci
    # again, and its fence (laid by the cutover, lifted only by the cutover's lock_writes) stays.
    output, passed, trail = model_check("safety-any", "BUG_UNLOCK_KEEPS_FENCE")
    expect(passed).to be(false), output
    expect(output).to match(/invalid end state/)
    expect(trail).to include("rb_done = 11")
    expect(trail).to match(/db\[0\]\.fenced = 1/)
    expect(trail).to match(/db\[0\]\.serves = 3/)
  end
end
