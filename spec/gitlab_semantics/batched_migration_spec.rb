# frozen_string_literal: true

# The behaviours GitLab's spec/lib/gitlab/database/background_migration/batched_migration_spec.rb
# asserts of BatchedMigration's executable scopes, on GitLab's tables (the fixture's DDL) and this
# library's fetch and claim.
RSpec.describe "GitLab's batched_migration_spec.rb, on the fetch and the claim", :postgres do
  before { Batches.configure }

  let(:url) do
    Clusters.fresh_database("gitlab_batched_migration").tap do |url|
      GitlabRows.create(url)
      SchemaFence::Install.up(url, name: "main", serves: %w[main])
    end
  end

  # A migration row as GitLab writes it; its id as its job argument keeps GitLab's unique index apart.
  def migration(table, status: 1, tag: "gitlab_main", hold: nil)
    id = GitlabRows.migration(url, "Job#{table.capitalize}", table, status:, range: [1, 100], tag:)
    PG.connect(url) do |c|
      c.exec_params("UPDATE batched_background_migrations SET on_hold_until = now() + $2::interval, " \
                    "job_arguments = jsonb_build_array($1::bigint) WHERE id = $1", [id, hold])
    end
    id
  end

  def runner(fetch_limit: 8)
    SchemaFence::Runner.new(url:, database: "main", fetch_limit:)
  end

  # GitLab keeps queue order (id); a bounded fetch cannot (README, "The order differs from GitLab's"):
  # the migrations that never ran come first in queue order, then the rest by how long they waited.
  it "active_migrations_distinct_on_table: one executable migration per table, those never run first" do
    migration("users", status: 3)                                  # not active
    migration("users", hold: "10 minutes")                         # on hold
    migration("users", tag: "gitlab_not_existing")                 # not of this connection's schemas
    no_longer_on_hold = migration("users", hold: "-10 minutes")    # active, its hold is over
    migration("users")                                             # another active one of the same table
    other_table = migration("projects")
    third_table = migration("namespaces")
    expect(runner(fetch_limit: 2).fetch.first).to eq([other_table, third_table])
    expect(runner.fetch.first).to eq([other_table, third_table, no_longer_on_hold])
  end

  it "active_migrations_distinct_on_table: nothing when nothing is executable" do
    migration("users", status: 0)
    expect(runner.fetch.first).to eq([])
  end

  it "find_executable: a claim by id (run_migration_batch's) takes nothing of a migration not active, on hold " \
     "or of another schema" do
    finished = migration("users", status: 3)
    held = migration("namespaces", hold: "10 minutes")
    foreign = migration("issues", tag: "gitlab_not_existing")
    executable = migration("projects")
    [finished, held, foreign].each do |id|
      expect(runner.claim_migration(id, nil)).to be_nil, "migration #{id}"
    end
    expect(runner.claim_migration(executable, nil)).to be_a(SchemaFence::Batch)
  end
end
