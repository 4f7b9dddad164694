# frozen_string_literal: true

# docs/architecture.md section 12: resolving one name from Ruby (FFI included) must be >= 3x faster than a
# Ruby implementation of GitLab's `table_schema` rules. Dictionary: GitLab's 572-table flat map
# (../shared/fixtures/gitlab/gitlab_schemas.yml) plus a small db/docs overlay of later GitLab
# tables, so that the p_ci_* parent rule and the deleted-table rule have something to find.
# Run with `rake bench`; BENCH_TIME sets the seconds per side.

require "fileutils"
require "tmpdir"
require "benchmark/ips"
require "schema_fence"
require_relative "support/gitlab_table_schema"
require_relative "support/report"

BUDGET = 3
FLAT = ENV.fetch("GITLAB_SCHEMAS_YML", File.expand_path("../../shared/fixtures/gitlab/gitlab_schemas.yml", __dir__))
TIME = Float(ENV.fetch("BENCH_TIME", "3"))

# Later GitLab tables: CI tables partitioned as p_ci_*, and tables GitLab has since dropped.
OVERLAY = {
  "" => { "p_ci_job_annotations" => "gitlab_ci", "p_ci_build_tags" => "gitlab_ci",
          "p_ci_builds_execution_configs" => "gitlab_ci", "p_ci_finished_build_ch_sync_events" => "gitlab_ci" },
  "deleted_tables" => { "ci_build_trace_sections" => "gitlab_ci", "ci_build_trace_section_names" => "gitlab_ci",
                        "vulnerability_finding_fingerprints" => "gitlab_main" }
}.freeze

# One of each kind of name a worker or the guard meets, unknown ones included.
NAMES = %w[
  projects ci_builds merge_requests namespaces users issues ci_pipelines ci_job_artifacts notes
  events web_hook_logs ci_stages security_findings loose_foreign_keys_deleted_records
  batched_background_migrations schema_migrations
  public.projects public.ci_builds public.merge_requests public.batched_background_migration_jobs
  gitlab_partitions_dynamic.ci_builds_101 gitlab_partitions_dynamic.loose_foreign_keys_deleted_records_3
  gitlab_partitions_static.product_analytics_events_experimental_12 web_hook_logs_202301 ci_builds_metadata_102
  ci_job_annotations gitlab_partitions_dynamic.ci_job_annotations_100 ci_build_tags_102 p_ci_build_tags
  ci_builds_execution_configs
  pg_class pg_catalog.pg_index information_schema.columns
  ci_build_trace_sections vulnerability_finding_fingerprints_7
  _test_gitlab_main_table _test_gitlab_ci_items _test_gitlab_main_cell_things _test_my_table
  no_such_table public.nope ci_nothing_here ci_unknown_101 foo.bar.baz p_ci_nothing x_1
].map(&:freeze).freeze

def write_overlay(dir)
  OVERLAY.each do |sub, tables|
    FileUtils.mkdir_p(File.join(dir, sub))
    tables.each do |table, schema|
      File.write(File.join(dir, sub, "#{table}.yml"), <<~YAML)
        ---
        table_name: #{table}
        classes: []
        feature_categories:
        - continuous_integration
        description: Overlay table for the resolve bench
        introduced_by_url: https://gitlab.com/gitlab-org/gitlab/-/merge_requests/1
        milestone: '16.0'
        gitlab_schema: #{schema}
      YAML
    end
  end
end

# Every name of the dictionary in every form the rules read, for the equality check.
def check_names(tables)
  tables.flat_map do |t|
    [t, "public.#{t}", "#{t}_7", "gitlab_partitions_dynamic.#{t}_101", "p_#{t}", "_test_#{t}",
     "_test_gitlab_main_#{t}", "#{t}_", "#{t}.x", "pg_#{t}"]
  end + NAMES + ["", ".", "_1", "a.", ".b", "ci_", "p_", "ci_1", "_test_", "_test_gitlab_", "émoji_1"]
end

# Before anything is timed: both sides give the same answer for every name.
def check_agreement!(dict, ruby, names)
  diffs = names.reject { |n| dict.table_schema(n) == ruby.table_schema(n) }
  diffs.first(20).each do |n|
    puts "  DIFFERENT: #{n.inspect}: schema_fence #{dict.table_schema(n).inspect}, ruby #{ruby.table_schema(n).inspect}"
  end
  abort "resolve: #{diffs.size} of #{names.size} names resolve differently" unless diffs.empty?
end

# Seconds per name: each iteration resolves every name of NAMES once, in a plain while loop.
def seconds_per_name(resolvers)
  count = NAMES.size
  report = Benchmark.ips(quiet: true) do |x|
    x.config(time: TIME, warmup: 1)
    resolvers.each do |label, resolver|
      x.report(label) do |times|
        times.times do
          i = 0
          while i < count
            resolver.table_schema(NAMES[i])
            i += 1
          end
        end
      end
    end
  end
  report.entries.to_h { |e| [e.label, 1.0 / (e.ips * count)] }
end

Dir.mktmpdir("schema_fence_resolve") do |tmp|
  docs = File.join(tmp, "db", "docs")
  write_overlay(docs)
  dict = SchemaFence::Dictionary.load(FLAT, docs)
  ruby = SchemaFence::Bench::GitlabTableSchema.load(FLAT, docs)
  tables = File.readlines(FLAT).filter_map { |l| l[/\A(\w+):/, 1] }
  names = check_names(tables + OVERLAY.values.flat_map(&:keys))
  check_agreement!(dict, ruby, names)

  rules = NAMES.map { |n| dict.resolve(n)&.last || :unknown }.tally.map { |rule, n| "#{rule} #{n}" }
  puts "resolve: #{dict.size} tables; both sides agree on #{names.size} names; timing #{NAMES.size} " \
       "mixed names (#{rules.join(', ')}), #{TIME}s each"

  per_name = seconds_per_name("ruby" => ruby, "schema_fence" => dict)
  met = SchemaFence::Bench::Report.row("resolve one name (FFI included)", baseline: per_name.fetch("ruby"),
                                                                          ours: per_name.fetch("schema_fence"),
                                                                          budget: BUDGET)
  SchemaFence::Bench::Report.summary("resolve", [met])
end
