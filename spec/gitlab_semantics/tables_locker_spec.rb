# frozen_string_literal: true

# The behaviours GitLab's spec/lib/gitlab/database/tables_locker_spec.rb asserts of TablesLocker
# (which tables of which database are locked after the split, partitions included, and none on a
# database still shared), on this library's write locks, laid from each database's identity.
RSpec.describe "GitLab's tables_locker_spec.rb, on SchemaFence::Cutover.lock_writes", :postgres do
  # Each database is locked once; the examples only read and try writes that are refused.
  before(:all) do
    Batches.configure
    @main = LockTables.database("gitlab_tables_locker_main", name: "main", serves: %w[main])
    @ci = LockTables.database("gitlab_tables_locker_ci", name: "ci", serves: %w[ci])
    @shared = LockTables.database("gitlab_tables_locker_shared", name: "main", serves: %w[main ci])
    @locked = [@main, @ci, @shared].to_h { |url| [url, SchemaFence::Cutover.lock_writes(url)] }
  end

  def refused?(url, table)
    !LockTables.refusal(url, "UPDATE #{table} SET value = value").nil?
  end

  it "on split databases locks the gitlab_ci tables on main, their partitions included" do
    expect(@locked[@main])
      .to contain_exactly("ci_builds", "ci_builds_metadata", "gitlab_partitions_dynamic.ci_builds_metadata_100",
                          "gitlab_partitions_dynamic.ci_builds_metadata_99")
    expect(refused?(@main, "ci_builds")).to be(true)
    expect(refused?(@main, "projects")).to be(false)
  end

  it "on split databases locks the gitlab_main tables on ci" do
    expect(@locked[@ci]).to eq(["projects"])
    expect(refused?(@ci, "projects")).to be(true)
    expect(refused?(@ci, "ci_builds")).to be(false)
  end

  it "locks the rows written straight into a partition (gitlab_partitions_dynamic) with its table" do
    expect(LockTables.refusal(@main, "INSERT INTO gitlab_partitions_dynamic.ci_builds_metadata_100 (id, partition_id) " \
                                     "VALUES (9, 100)")).to match(/write-locked/)
    expect(LockTables.refusal(@main, "TRUNCATE gitlab_partitions_dynamic.ci_builds_metadata_100")).to match(/write-locked/)
  end

  it "locks a detached partition (a table of its own in gitlab_partitions_dynamic) by the table its name is of" do
    expect(LockTables.refusal(@main, "UPDATE gitlab_partitions_dynamic.ci_builds_metadata_99 SET value = 1"))
      .to match(/write-locked/)
  end

  it "never locks gitlab_shared or gitlab_internal tables, on either database" do
    [@main, @ci].each do |url|
      expect(refused?(url, "loose_foreign_keys_deleted_records")).to be(false)
      expect(LockTables.refusal(url, "UPDATE ar_internal_metadata SET value = value")).to be_nil
      expect(@locked[url]).not_to include("loose_foreign_keys_deleted_records", "ar_internal_metadata",
                                          "batched_background_migrations")
    end
  end

  it "locks nothing on a database that still serves both (ci not yet split off main)" do
    expect(@locked[@shared]).to eq([])
    expect(%w[ci_builds projects ci_builds_metadata].map { |table| refused?(@shared, table) }).to eq([false] * 3)
  end

  it "unlocks, when it locks, the tables of the schemas the database serves (a lock left from before)" do
    url = LockTables.database("gitlab_tables_locker_relock", name: "ci", serves: %w[ci])
    Batches.stamp!(url, "name = 'main', serves = ARRAY['main']")
    SchemaFence::Cutover.lock_writes(url)
    Batches.stamp!(url, "name = 'ci', serves = ARRAY['ci']")
    expect(refused?(url, "ci_builds")).to be(true)
    SchemaFence::Cutover.lock_writes(url)
    expect(refused?(url, "ci_builds")).to be(false)
    expect(refused?(url, "projects")).to be(true)
  end
end
