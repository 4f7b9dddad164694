# frozen_string_literal: true

# `bin/demo dictionary`: load GitLab's dictionary, show what each gitlab_schema holds, and
# resolve table names with the rule that matched.
#
#   bin/demo dictionary                          # GitLab's map in ../shared/fixtures/gitlab, a showcase
#   bin/demo dictionary PATH [PATH...] -- NAMES  # your own dictionary sources and names

root = File.expand_path("..", __dir__)
require "schema_fence"
require "terminal-table"
require "tmpdir"
require "yaml"

paths, names = ARGV.include?("--") ? [ARGV[0...ARGV.index("--")], ARGV[(ARGV.index("--") + 1)..]] : [ARGV, []]
fixtures = File.expand_path("../shared/fixtures/gitlab", root)

# GitLab's later db/docs pairs, written out as a db/docs directory in GitLab's file shape, with
# one table that GitLab deleted since (so the deleted-tables rule has something to show).
def write_db_docs(fixtures, dir)
  docs = File.join(dir, "db", "docs")
  FileUtils.mkdir_p(File.join(docs, "deleted_tables"))
  File.readlines(File.join(fixtures, "db_docs_tables.tsv"), chomp: true).drop(1).each do |line|
    table, schema = line.split("\t")
    File.write(File.join(docs, "#{table}.yml"), { "table_name" => table, "gitlab_schema" => schema }.to_yaml)
  end
  File.write(File.join(docs, "deleted_tables", "ci_build_trace_sections.yml"),
             { "table_name" => "ci_build_trace_sections", "gitlab_schema" => "gitlab_ci" }.to_yaml)
  docs
end

SHOWCASE = [
  ["ci_builds", "exact match"],
  ["public.projects", "public. prefix split off"],
  ["pg_class", "PostgreSQL catalog"],
  ["information_schema.columns", "information_schema"],
  ["gitlab_partitions_dynamic.ci_builds_metadata_101", "partition suffix stripped"],
  ["ci_build_tags", "p_ci_ partitioned parent (db/docs has p_ci_build_tags)"],
  ["ci_build_trace_sections", "a deleted table (db/docs deleted_tables/)"],
  ["_test_gitlab_ci_widgets", "_test_gitlab_<schema>_ prefix"],
  ["_test_widgets", "other _test_ tables are shared"],
  %w[no_such_table unknown]
].freeze

def load(label, paths)
  started = Process.clock_gettime(Process::CLOCK_MONOTONIC)
  dictionary = SchemaFence::Dictionary.load(*paths)
  took = (Process.clock_gettime(Process::CLOCK_MONOTONIC) - started) * 1000
  puts "#{label}: #{dictionary.size} tables from #{dictionary.sources.join(', ')} in #{format('%.1f', took)} ms"
  puts Terminal::Table.new(headings: %w[gitlab_schema tables],
                           rows: dictionary.schemas.map { |s| [s, dictionary.tables(s).size] })
  puts
  dictionary
rescue SchemaFence::Error => e
  abort "bin/demo: #{e.class.name.split('::').last}: #{e.message}"
end

Dir.mktmpdir("schema_fence-demo") do |tmp|
  dictionaries =
    if paths.empty?
      { "flat map (2022)" => load("GitLab's flat map", [File.join(fixtures, "gitlab_schemas.yml")]),
        "db/docs (later)" => load("GitLab's later db/docs", [write_db_docs(fixtures, tmp)]) }
    else
      { "your dictionary" => load("Your dictionary", paths) }
    end

  rows = (names.empty? ? SHOWCASE : names.map { |n| [n, ""] }).map do |name, why|
    [name, *dictionaries.values.map { |d| d.resolve(name)&.join(" by ") || "(unknown)" }, why]
  end
  puts Terminal::Table.new(headings: ["name", *dictionaries.keys, "what it shows"], rows:)
end

topology_dir = File.join(fixtures, "database_connections")
if File.directory?(topology_dir)
  topology = SchemaFence::Topology.load(topology_dir)
  puts "\nDatabases (#{topology_dir}):"
  topology.databases.each do |db|
    fallback = db.fallback_database ? ", falls back to #{db.fallback_database}" : ""
    puts "  #{db.name}: #{db.gitlab_schemas.join(', ')}#{fallback}"
  end
end
