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
    wrong = { @source_url => %w[gitlab_ci], @target_url => %w[gitlab_main gitlab_sec] }
    wrong.sum do |url, tags|
      PG.connect(url) do |c|
        c.exec_params("SELECT count(*) FROM batched_background_migration_jobs j JOIN batched_background_migrations m " \
                      "ON m.id = j.batched_background_migration_id WHERE m.gitlab_schema = ANY($1::text[]) " \
                      "AND j.claimed_epoch >= 1", [PG::TextEncoder::Array.new.encode(tags)]).getvalue(0, 0).to_i
      end
    end
  end

  # What became of the application's writes: acknowledged, lost (acknowledged and not on the
  # database that owns the table now), refused and retried.
  # +ci_owner+ is the database that owns ci's tables at the end (the new ci after a split, main
  # after a rollback).
  def application_writes(ci_owner: @target_url)
    acknowledged, refusals = writer_log
    ci_acks = acknowledged.select { |kind, _| kind == "ci" }.map { |_, id, _| Integer(id) }
    on_target = ids_in(ci_owner, SplitScenario::WRITTEN[:ci])
    on_source = ci_owner == @source_url ? on_target : ids_in(@source_url, SplitScenario::WRITTEN[:ci])
    sec_acks = acknowledged.count { |kind, _| kind == "sec" }
    sec_written = PG.connect(@source_url) do |c|
      c.exec("SELECT COALESCE(sum(written), 0) FROM #{PG::Connection.quote_ident(SplitScenario::WRITTEN[:sec])}")
       .getvalue(0, 0).to_i
    end
    { ci_acknowledged: ci_acks.size, ci_lost: (ci_acks - on_target).size,
      ci_acknowledged_on_main_and_absent_on_ci: (on_source - on_target).size,
      ci_refused: refusals.grep(/\Aci /).size, fence_refusals: refusals.grep(/refused SF001/).size,
      sec_acknowledged: sec_acks, sec_lost: sec_acks - sec_written, sec_refused: refusals.grep(/\Asec /).size }
  end

  # sec's tables that carry a write lock on main (there must be none: sec still shares main).
  def sec_tables_locked_on_main
    PG.connect(@source_url) do |c|
      tables = SplitScenario::TABLES.select { |_, schema| schema == :gitlab_sec }.keys
      c.exec_params("SELECT count(*) FROM pg_trigger t JOIN pg_class r ON r.oid = t.tgrelid " \
                    "WHERE t.tgname LIKE 'schema_fence%' AND r.relname = ANY($1::text[])",
                    [PG::TextEncoder::Array.new.encode(tables)]).getvalue(0, 0).to_i
    end
  end

  def ids_in(url, table)
    PG.connect(url) { |c| c.exec("SELECT id FROM #{PG::Connection.quote_ident(table)}").column_values(0).map(&:to_i) }
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
