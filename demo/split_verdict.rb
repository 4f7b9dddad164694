# frozen_string_literal: true

require "pg"

# What the split scenario (demo/split_scenario.rb) reads back from the data: how often each key
# was processed, and on which database.
module SplitVerdict
  # [never processed, once, more than once], summed over every copy each database owns.
  def owned_counts
    self.class.owned.map { |database, table| counts(url_of(database), table) }.transpose.map(&:sum)
  end

  # [never processed, once, more than once] for +table+ on +url+.
  def counts(url, table)
    PG.connect(url) do |c|
      c.exec("SELECT count(*) FILTER (WHERE done = 0), count(*) FILTER (WHERE done = 1), " \
             "count(*) FILTER (WHERE done > 1) FROM #{table}").values.first.map(&:to_i)
    end
  end

  # Batches claimed after the stamp on a database that no longer serves their tag.
  def batches_on_wrong_database
    wrong = { @source_url => "gitlab_ci", @target_url => "gitlab_main" }
    wrong.sum do |url, tag|
      PG.connect(url) do |c|
        c.exec_params("SELECT count(*) FROM batched_background_migration_jobs j JOIN batched_background_migrations m " \
                      "ON m.id = j.batched_background_migration_id WHERE m.gitlab_schema = $1 AND j.claimed_epoch >= 1",
                      [tag]).getvalue(0, 0).to_i
      end
    end
  end

  # Failed attempts refused by a lock-writes trigger.
  def lock_writes_fired
    [@source_url, @target_url].sum do |url|
      PG.connect(url) do |c|
        c.exec("SELECT count(*) FROM batched_background_migration_jobs WHERE metrics->>'error' LIKE '%write-locked%'")
         .getvalue(0, 0).to_i
      end
    end
  end
end
