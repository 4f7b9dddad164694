# frozen_string_literal: true

# The behaviours GitLab's spec/lib/gitlab/database/lock_writes_manager_spec.rb asserts of
# LockWritesManager (a locked table refuses writes and TRUNCATE, unlocking allows them again), on
# this library's write locks (SchemaFence::Cutover.lock_writes / unlock_writes) of main after the split.
RSpec.describe "GitLab's lock_writes_manager_spec.rb, on SchemaFence::Cutover.lock_writes", :postgres do
  before(:all) do
    Batches.configure
    @url = LockTables.database("gitlab_lock_writes", name: "main", serves: %w[main])
  end

  attr_reader :url

  # Each example starts locked and leaves the database unlocked, as it found it.
  before { SchemaFence::Cutover.lock_writes(url) }
  after { SchemaFence::Cutover.unlock_writes(url) }

  def refusal(sql) = LockTables.refusal(url, sql)

  it "lock_writes prevents any writes on the table: DELETE, INSERT and UPDATE are refused, naming the table, " \
     "the database and the schema that owns it" do
    message = /table ci_builds is write-locked on database main: it belongs to gitlab_ci/
    expect(refusal("DELETE FROM ci_builds")).to match(message)
    expect(refusal("INSERT INTO ci_builds (id) VALUES (4)")).to match(message)
    expect(refusal("UPDATE ci_builds SET value = 1")).to match(message)
    expect(PG.connect(url) { |c| c.exec("SELECT count(*), max(value) FROM ci_builds").values.first }).to eq(%w[3 0])
  end

  it "lock_writes prevents truncating the table" do
    expect(refusal("TRUNCATE ci_builds")).to match(/table ci_builds is write-locked/)
  end

  it "lock_writes adds the triggers information_schema lists for INSERT, UPDATE and DELETE (3), once however " \
     "often it runs" do
    SchemaFence::Cutover.unlock_writes(url)
    expect { SchemaFence::Cutover.lock_writes(url) }.to change { LockTables.trigger_rows(url, "ci_builds") }.from(0).to(3)
    expect { SchemaFence::Cutover.lock_writes(url) }.not_to(change { LockTables.trigger_rows(url, "ci_builds") })
  end

  it "lock_writes tells which tables it locked (GitLab logs each)" do
    expect(SchemaFence::Cutover.lock_writes(url))
      .to contain_exactly("ci_builds", "ci_builds_metadata", "gitlab_partitions_dynamic.ci_builds_metadata_100",
                          "gitlab_partitions_dynamic.ci_builds_metadata_99")
  end

  it "unlock_writes allows writing on the table again" do
    SchemaFence::Cutover.unlock_writes(url)
    expect(refusal("DELETE FROM ci_builds WHERE id = 3")).to be_nil
    expect(refusal("INSERT INTO ci_builds (id) VALUES (3)")).to be_nil
    expect(refusal("TRUNCATE ci_builds_metadata")).to be_nil
    PG.connect(url) { |c| c.exec("INSERT INTO ci_builds_metadata (id, partition_id) VALUES (1, 100), (2, 100), (3, 100)") }
  end

  it "unlock_writes removes the write protection triggers, and tells which tables it unlocked" do
    unlocked = nil
    expect { unlocked = SchemaFence::Cutover.unlock_writes(url) }
      .to change { LockTables.trigger_rows(url, "ci_builds") }.from(3).to(0)
    expect(unlocked).to include("ci_builds", "ci_builds_metadata")
  end
end
