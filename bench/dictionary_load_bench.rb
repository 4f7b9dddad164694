# frozen_string_literal: true

# docs/architecture.md section 12: loading a 1,200-file db/docs dictionary must be >= 10x faster than Ruby's
# YAML.safe_load_file per file into a Hash. Run with `rake bench` (or
# `ruby -Ilib bench/dictionary_load_bench.rb` after `rake compile`). BENCH_RUNS sets the runs.

require "yaml"
require "schema_fence"
require_relative "support/docs_generator"
require_relative "support/report"

BUDGET = 10
RUNS = Integer(ENV.fetch("BENCH_RUNS", "15"))

# The baseline: what a Ruby app does today, over the same files Dictionary.load reads.
def ruby_baseline(dir)
  live = {}
  deleted = {}
  Dir["#{dir}/*.yml", "#{dir}/views/*.yml"].each do |f|
    h = YAML.safe_load_file(f)
    live[h["table_name"] || h["view_name"]] = h["gitlab_schema"]
  end
  Dir["#{dir}/deleted_tables/*.yml", "#{dir}/deleted_views/*.yml"].each do |f|
    h = YAML.safe_load_file(f)
    deleted[h["table_name"] || h["view_name"]] = h["gitlab_schema"]
  end
  [live, deleted]
end

SchemaFence::Bench::DocsGenerator.with_docs_dir do |dir, entries|
  files = entries.size
  puts "dictionary_load: #{files} files (#{entries.count { |e| e.kind == :table }} tables, " \
       "#{entries.count { |e| e.kind == :view }} views, " \
       "#{entries.count { |e| e.kind.to_s.start_with?('deleted') }} deleted) in a generated db/docs, " \
       "#{Etc.nprocessors} cores, median of #{RUNS} runs"

  # Both sides must read the same thing before either is timed.
  dict = SchemaFence::Dictionary.load(dir)
  live, deleted = ruby_baseline(dir)
  wrong = entries.reject do |e|
    ruby = e.kind.to_s.start_with?("deleted") ? deleted[e.name] : live[e.name]
    ruby == e.schema && dict.table_schema(e.name) == e.schema.to_sym
  end
  wrong.first(10).each do |e|
    puts "  DIFFERENT: #{e.kind} #{e.name}: expected #{e.schema}, got #{dict.table_schema(e.name).inspect}"
  end
  abort "dictionary_load: #{wrong.size} entries differ between the baseline and schema_fence" unless wrong.empty?
  abort "dictionary_load: native size #{dict.size} != baseline #{live.size}" unless dict.size == live.size

  GC.start
  baseline = SchemaFence::Bench::Report.median_seconds(runs: RUNS) { ruby_baseline(dir) }
  GC.start
  ours = SchemaFence::Bench::Report.median_seconds(runs: RUNS * 3) { SchemaFence::Dictionary.load(dir) }

  met = SchemaFence::Bench::Report.row("load #{files}-file db/docs dictionary", baseline:, ours:,
                                                                                budget: BUDGET)
  SchemaFence::Bench::Report.summary("dictionary_load", [met])
end
