# frozen_string_literal: true

require "pg"

# What the soak (spec/support/soak.rb) reads back from the data once it is over.
module SoakFacts
  # For each table and each database that owns it: [keys never processed, keys processed more
  # than once outside a batch that was run again after a failure or a crash].
  def key_counts(owner, table)
    id = migration(owner, table).id
    PG.connect(url_of(owner)) do |c|
      c.exec_params(<<~SQL, [id]).values.first.map(&:to_i)
        SELECT count(*) FILTER (WHERE t.done = 0),
               count(*) FILTER (WHERE t.done > 1 AND NOT EXISTS (
                   SELECT 1 FROM batched_background_migration_jobs j
                   WHERE j.batched_background_migration_id = $1 AND j.attempts > 1
                     AND t.id BETWEEN j.min_value AND j.max_value))
        FROM #{PG::Connection.quote_ident(table)} t
      SQL
    end
  end

  # Keys processed more than once in all (only after a crash or a failed attempt).
  def repeated_keys(owner, table)
    PG.connect(url_of(owner)) do |c|
      c.exec("SELECT count(*) FROM #{PG::Connection.quote_ident(table)} WHERE done > 1").getvalue(0, 0).to_i
    end
  end

  # Per database: the most attempts of any job, failed migrations, jobs refused by a write lock.
  def tracking_facts(database)
    PG.connect(url_of(database)) do |c|
      c.exec(<<~SQL).values.first.map(&:to_i)
        SELECT (SELECT COALESCE(max(attempts), 0) FROM batched_background_migration_jobs),
               (SELECT count(*) FROM batched_background_migrations WHERE status = 4),
               (SELECT count(*) FROM batched_background_migration_jobs WHERE metrics->>'error' LIKE '%write-locked%'),
               (SELECT count(*) FROM batched_background_migration_jobs)
      SQL
    end
  end

  # Batches claimed after the stamp on a database that no longer serves their tag.
  def batches_on_wrong_database
    { "main" => "gitlab_ci", "ci" => "gitlab_main" }.sum do |database, tag|
      PG.connect(url_of(database)) do |c|
        c.exec_params("SELECT count(*) FROM batched_background_migration_jobs j JOIN batched_background_migrations m " \
                      "ON m.id = j.batched_background_migration_id WHERE m.gitlab_schema = $1 AND j.claimed_epoch >= 1",
                      [tag]).getvalue(0, 0).to_i
      end
    end
  end

  # Lines of the Sidekiq logs that match +pattern+.
  def log_lines(pattern)
    Dir[File.join(@dir, "sidekiq-*.log")].sum { |f| File.foreach(f).grep(pattern).size }
  end
end
