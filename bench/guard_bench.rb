# frozen_string_literal: true

# docs/architecture.md section 12: a guard check per statement, against the pg_query gem
# (`PgQuery.parse(sql).tables`), each side repeated in alternating rounds (min / median / max):
# - warm, the same texts again and again (a batch's sub-batches with bound keys): the guard
#   against a one-line Hash memo of the parse (the fair baseline: a memo is what anyone would
#   write), budget >= 1x;
# - new literals of known shapes (sub-batch keys written into the text, as ActiveRecord does
#   with prepared_statements: false): the guard's cache by shape against a parse per call (a memo
#   misses every time), budget >= 3x;
# - cold, every text a new shape (a numbered comment, which normalize keeps): the guard's full
#   parse and walk against pg_query's parse, budget >= 3x.
#
# Statements: the kinds a batched background migration sends on main (GitLab's 572-table map,
# allowed gitlab_main, gitlab_shared, gitlab_internal, tag gitlab_main); %<n>d is a literal.
# Run with `rake bench`; BENCH_ROUNDS and BENCH_CALLS set the rounds and checks per side.

require "pg_query"
require "schema_fence"
require_relative "support/report"
require_relative "support/repeated"

FLAT = ENV.fetch("GITLAB_SCHEMAS_YML", File.expand_path("../../shared/fixtures/gitlab/gitlab_schemas.yml", __dir__))
ROUNDS = Integer(ENV.fetch("BENCH_ROUNDS", "7"))
CALLS = Integer(ENV.fetch("BENCH_CALLS", "2000"))
WARM_BUDGET = 1
SHAPE_BUDGET = 3
COLD_BUDGET = 3

STATEMENTS = [
  'SELECT "projects"."id" FROM "projects" WHERE "projects"."id" BETWEEN %<n>d AND 10000 ' \
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
  "WHERE \"members\".\"source_id\" IN (SELECT id FROM namespaces WHERE traversal_ids @> ARRAY[%<n>d]::int[])",
  'UPDATE "issues" SET "state_id" = 2 WHERE "issues"."id" >= %<n>d AND "issues"."id" < %<n>d + 100'
].map(&:freeze).freeze

def text(index, literal, comment = nil)
  sql = format(STATEMENTS[index], n: literal)
  comment ? "#{sql} /* #{comment} */" : sql
end

# Before anything is timed: every statement passes, and both sides see the same tables.
def check_agreement!(guard)
  STATEMENTS.each_index do |i|
    sql = text(i, 1)
    guard.check(sql)
    ours = guard.tables(sql).values.flatten.uniq.sort
    theirs = PgQuery.parse(sql).tables.uniq.sort
    abort "guard: tables differ for #{sql}: schema_fence #{ours}, pg_query #{theirs}" unless ours == theirs
  end
end

# Seconds per check of each side: CALLS checks per round, ROUNDS rounds.
def per_check(sides)
  SchemaFence::Bench::Repeated.alternate(rounds: ROUNDS, sides:).transform_values { |v| v.map { |s| s / CALLS } }
end

def line(name, baseline, ours, budget)
  repeated = SchemaFence::Bench::Repeated
  puts "  #{name}: baseline #{repeated.spread_text(baseline)} | schema_fence #{repeated.spread_text(ours)} " \
       "(min / median / max per check)"
  SchemaFence::Bench::Report.row(name, baseline: repeated.spread(baseline)[1], ours: repeated.spread(ours)[1], budget:)
end

dictionary = SchemaFence::Dictionary.load(FLAT)
new_guard = -> { SchemaFence::Guard.new(dictionary:, allowed: %i[gitlab_main gitlab_shared gitlab_internal], tag: :gitlab_main) }
check_agreement!(new_guard.call)

count = STATEMENTS.size
serial = 0
# Every text is made before the clock runs: each side's rounds take the next CALLS of its own.
texts = lambda do |literal: false, comment: false|
  Array.new(ROUNDS) do
    Array.new(CALLS) { |c| text(c % count, literal ? serial += 1 : 1, (serial += 1 if comment)) }
  end
end
warm = texts.call.first
feeds = { "parse literals" => texts.call(literal: true), "guard literals" => texts.call(literal: true),
          "parse cold" => texts.call(comment: true), "guard cold" => texts.call(comment: true) }
memo = Hash.new { |h, sql| h[sql] = PgQuery.parse(sql).tables }
warm_guard = new_guard.call
shape_guard = new_guard.call
cold_guard = new_guard.call
warm.each do |sql|
  memo[sql]
  warm_guard.check(sql)
  shape_guard.check(sql)
end

puts "guard: #{dictionary.size}-table dictionary, #{count} batch statements, #{ROUNDS} rounds of #{CALLS} checks per side"
times = per_check(
  "memo warm" => -> { warm.each { |sql| memo[sql] } },
  "guard warm" => -> { warm.each { |sql| warm_guard.check(sql) } },
  "parse literals" => -> { feeds["parse literals"].shift.each { |sql| PgQuery.parse(sql).tables } },
  "guard literals" => -> { feeds["guard literals"].shift.each { |sql| shape_guard.check(sql) } },
  "parse cold" => -> { feeds["parse cold"].shift.each { |sql| PgQuery.parse(sql).tables } },
  "guard cold" => -> { feeds["guard cold"].shift.each { |sql| cold_guard.check(sql) } }
)
abort "guard: the shapes did not stay #{count}: #{shape_guard.shape_cache_size}" if shape_guard.shape_cache_size > count
results = [
  line("guard check, warm (vs a memoized parse)", times.fetch("memo warm"), times.fetch("guard warm"), WARM_BUDGET),
  line("guard check, new literals of known shapes", times.fetch("parse literals"), times.fetch("guard literals"),
       SHAPE_BUDGET),
  line("guard check, cold (every text a new shape)", times.fetch("parse cold"), times.fetch("guard cold"), COLD_BUDGET)
]
puts "  cache: #{warm_guard.cache_size} texts (bounded at 10,000), #{shape_guard.shape_cache_size} shapes in the " \
     "literal guard, #{cold_guard.shape_cache_size} shapes in the cold guard (bounded at 10,000)"
SchemaFence::Bench::Report.summary("guard", results)
