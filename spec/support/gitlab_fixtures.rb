# frozen_string_literal: true

require "yaml"

# GitLab's own data, in ../shared/fixtures/gitlab beside the clone (or $SCHEMA_FENCE_FIXTURES: the
# Debian 13 stack mounts it elsewhere), and dictionaries written to temporary directories.
module GitlabFixtures
  ROOT = ENV.fetch("SCHEMA_FENCE_FIXTURES") { File.expand_path("../../../shared/fixtures/gitlab", __dir__) }

  module_function

  def path(*parts)
    File.join(ROOT, *parts)
  end

  # The 572 pairs of GitLab's flat map, read independently of the gem: table => schema name.
  def flat_map
    File.readlines(path("gitlab_schemas.yml"), chomp: true)
        .grep_v(/\A\s*(#|\z)/)
        .to_h { |line| line.split(": ", 2).map { |s| s.strip.delete_prefix(":") } }
  end

  # The 87 pairs of db_docs_tables.tsv: table => schema name.
  def db_docs_pairs
    File.readlines(path("db_docs_tables.tsv"), chomp: true).drop(1).reject(&:empty?)
        .to_h { |line| line.split("\t", 2) }
  end

  # Writes pairs as a db/docs directory in GitLab's file shape; returns the directory.
  def write_db_docs(root, pairs, subdir: nil, key: "table_name")
    dir = File.join(root, "db", "docs", *subdir)
    FileUtils.mkdir_p(dir)
    pairs.each do |table, schema|
      doc = { key => table, "classes" => ["Some::Model"], "feature_categories" => ["database"],
              "description" => "Rows of #{table}", "introduced_by_url" => "https://example.com/mr/1",
              "milestone" => "16.0", "gitlab_schema" => schema }
      File.write(File.join(dir, "#{table}.yml"), doc.to_yaml)
    end
    File.join(root, "db", "docs")
  end

  def write(root, relative, text)
    file = File.join(root, relative)
    FileUtils.mkdir_p(File.dirname(file))
    File.write(file, text)
    file
  end
end
