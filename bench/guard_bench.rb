# frozen_string_literal: true

# DESIGN.md section 12: a guard check per statement must be >= 20x faster than
# `PgQuery.parse(sql).tables` (the pg_query gem) with the cache warm, and >= 3x faster cold.
#
# Statements: the kinds a batched background migration sends on main (GitLab's 572-table map,
# allowed gitlab_main, gitlab_shared, gitlab_internal, tag gitlab_main). Warm: the same texts
# again and again, as a batch's sub-batches repeat them. Cold: every call gets a text never seen
# (the statement plus a numbered comment), so every check parses; the baseline gets the same
# texts. Run with `rake bench`; BENCH_TIME sets the seconds per side.

require "benchmark/ips"
require "pg_query"
require "schema_fence"
require_relative "support/report"

FLAT = ENV.fetch("GITLAB_SCHEMAS_YML", File.expand_path("../../shared/fixtures/gitlab/gitlab_schemas.yml", __dir__))
TIME = Float(ENV.fetch("BENCH_TIME", "3"))
WARM_BUDGET = 20
COLD_BUDGET = 3

STATEMENTS = [
  'SELECT "projects"."id" FROM "projects" WHERE "projects"."id" BETWEEN 1 AND 10000 ' \
  'ORDER BY "projects"."id" ASC LIMIT 1 OFFSET 1000',
  'UPDATE "issues" SET "namespace_id" = "projects"."project_namespace_id" FROM "projects" ' \
  'WHERE "projects"."id" = "issues"."project_id" AND "issues"."id" BETWEEN $1 AND $2',
  "INSERT INTO issue_metrics (issue_id, created_at, updated_at) SELECT id, now(), now() FROM issues " \
  "WHERE id BETWEEN $1 AND $2 AND NOT EXISTS (SELECT 1 FROM issue_metrics m WHERE m.issue_id = issues.id) " \
  "ON CONFLICT (issue_id) DO NOTHING",
  "DELETE FROM notes USING projects WHERE notes.project_id = projects.id AND projects.pending_delete " \
  "AND notes.id BETWEEN $1 AND $2",
  "WITH batch AS MATERIALIZED (SELECT id FROM merge_requests WHERE id BETWEEN $1 AND $2 AND state_id = 3) " \
  "UPDATE merge_requests SET merged_commit_sha = NULL FROM batch WHERE merge_requests.id = batch.id",
  "SELECT * FROM batched_background_migration_jobs WHERE batched_background_migration_id = $1 " \
  "AND status IN (0, 2) ORDER BY id LIMIT 1 FOR UPDATE SKIP LOCKED",
  "INSERT INTO loose_foreign_keys_deleted_records (fully_qualified_table_name, primary_key_value) " \
  "SELECT 'public.projects', id FROM projects WHERE id BETWEEN $1 AND $2",
  'SELECT "users".* FROM "users" INNER JOIN "members" ON "members"."user_id" = "users"."id" ' \
  "WHERE \"members\".\"source_id\" IN (SELECT id FROM namespaces WHERE traversal_ids @> ARRAY[$1]::int[])"
].map(&:freeze).freeze

# Before anything is timed: every statement passes, and both sides see the same tables.
def check_agreement!(guard)
  STATEMENTS.each do |sql|
    guard.check(sql)
    ours = guard.tables(sql).values.flatten.uniq.sort
    theirs = PgQuery.parse(sql).tables.uniq.sort
    abort "guard: tables differ for #{sql}: schema_fence #{ours}, pg_query #{theirs}" unless ours == theirs
  end
end

# Seconds per statement of each labelled block; each block checks every statement once per call.
def seconds_per_statement(sides)
  count = STATEMENTS.size
  report = Benchmark.ips(quiet: true) do |x|
    x.config(time: TIME, warmup: 1)
    sides.each do |label, block|
      x.report(label) { |times| times.times { block.call } }
    end
  end
  report.entries.to_h { |e| [e.label, 1.0 / (e.ips * count)] }
end

dictionary = SchemaFence::Dictionary.load(FLAT)
guard = SchemaFence::Guard.new(dictionary:, allowed: %i[gitlab_main gitlab_shared gitlab_internal], tag: :gitlab_main)
check_agreement!(guard)

count = STATEMENTS.size
serial = 0
# A text never seen before: the statement and a numbered comment (the parser drops the comment).
fresh = ->(i) { "#{STATEMENTS[i]} /* #{serial += 1} */" }

puts "guard: #{dictionary.size}-table dictionary, #{count} batch statements, #{TIME}s per side"
times = seconds_per_statement(
  "pg_query warm" => -> { count.times { |i| PgQuery.parse(STATEMENTS[i]).tables } },
  "guard warm" => -> { count.times { |i| guard.check(STATEMENTS[i]) } },
  "pg_query cold" => -> { count.times { |i| PgQuery.parse(fresh.call(i)).tables } },
  "guard cold" => -> { count.times { |i| guard.check(fresh.call(i)) } }
)
results = [
  SchemaFence::Bench::Report.row("guard check, cache warm", baseline: times.fetch("pg_query warm"),
                                                            ours: times.fetch("guard warm"), budget: WARM_BUDGET),
  SchemaFence::Bench::Report.row("guard check, cold (every call parses)", baseline: times.fetch("pg_query cold"),
                                                                          ours: times.fetch("guard cold"),
                                                                          budget: COLD_BUDGET)
]
SchemaFence::Bench::Report.summary("guard", results)
