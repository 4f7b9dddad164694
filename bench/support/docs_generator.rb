# frozen_string_literal: true

require "fileutils"
require "tmpdir"

module SchemaFence
  module Bench
    # The words the generated db/docs files are made of.
    module DocsVocabulary
      SCHEMAS = {
        "gitlab_main" => 45, "gitlab_main_cell" => 25, "gitlab_ci" => 15,
        "gitlab_sec" => 8, "gitlab_shared" => 4, "gitlab_main_clusterwide" => 3
      }.freeze

      AREAS = {
        "ci" => %w[gitlab_ci continuous_integration Ci],
        "p_ci" => %w[gitlab_ci continuous_integration Ci],
        "vulnerability" => %w[gitlab_sec vulnerability_management Vulnerabilities],
        "security" => %w[gitlab_sec security_policy_management Security],
        "sbom" => %w[gitlab_sec dependency_management Sbom],
        "merge_request" => [nil, "code_review_workflow", "MergeRequests"],
        "issue" => [nil, "team_planning", "Issues"],
        "project" => [nil, "groups_and_projects", "Projects"],
        "namespace" => [nil, "groups_and_projects", "Namespaces"],
        "packages" => [nil, "package_registry", "Packages"],
        "analytics" => [nil, "value_stream_management", "Analytics"],
        "dependency_proxy" => [nil, "virtual_registry", "DependencyProxy"],
        "alert_management" => [nil, "incident_management", "AlertManagement"],
        "user" => [nil, "user_profile", "Users"],
        "audit" => [nil, "audit_events", "AuditEvents"],
        "search" => [nil, "global_search", "Search"],
        "ml" => [nil, "mlops", "Ml"],
        "loose_foreign_keys" => %w[gitlab_shared database Gitlab::Database]
      }.freeze

      MR_URL = "https://gitlab.com/gitlab-org/gitlab/-/merge_requests/"

      NOUNS = %w[
        builds pipelines stages artifacts variables runners events settings statistics metadata
        findings reads occurrences identifiers links assignees reviewers approvals rules policies
        states mentions notes uploads versions files tags trackers subscriptions schedules
        deployments environments metrics images records sources components occurrence_refs
        scans targets configurations snapshots aggregations daily_statistics access_tokens
        feature_flags project_links group_links build_infos composer_metadata debian_files
      ].freeze

      QUALIFIERS = %w[
        pending finished deleted archived partitioned namespace_level project_level user_level
        protected sync external internal upstream downstream latest weekly
      ].freeze

      DESCRIPTIONS = [
        "Stores %s for each %s",
        "Keeps track of %s that belong to a %s",
        "Join table between %s and %s",
        "Holds the %s used when processing a %s"
      ].freeze
    end

    # The text of one db/docs file, in the order of GitLab's files; draws from the includer's @rng.
    module DocsContent
      include DocsVocabulary

      private

      def document(kind, name, area, schema)
        key = kind.to_s.end_with?("view") ? "view_name" : "table_name"
        lines = ["---", "#{key}: #{name}", *classes_and_categories(name, area), *description(name, area)]
        lines << "introduced_by_url: #{MR_URL}#{@rng.rand(1_000..160_000)}"
        lines << "milestone: '#{milestone}'"
        lines << "gitlab_schema: #{schema}"
        lines.concat(sharding(schema)) if key == "table_name"
        lines << "table_size: #{%w[small medium large over_limit].sample(random: @rng)}" if @rng.rand < 0.6
        if kind.to_s.start_with?("deleted")
          lines << "removed_by_url: #{MR_URL}#{@rng.rand(100_000..170_000)}"
          lines << "removed_in_milestone: '#{milestone}'"
        end
        "#{lines.join("\n")}\n"
      end

      def classes_and_categories(name, area)
        _, category, namespace = AREAS.fetch(area)
        lines = ["classes:", "- #{namespace}::#{camelize(name.delete_prefix("#{area}_").delete_prefix('p_'))}"]
        lines << "- #{namespace}::Legacy#{camelize(name.split('_').last)}" if @rng.rand < 0.15
        lines << "feature_categories:"
        lines << "- #{category}"
        lines << "- #{AREAS.values.sample(random: @rng)[1]}" if @rng.rand < 0.1
        lines
      end

      def description(name, area)
        words = name.delete_prefix("#{area}_").tr("_", " ")
        text = format(DESCRIPTIONS.sample(random: @rng), words, area.tr("_", " "))
        case @rng.rand(10)
        when 0..5 then ["description: #{text}"]
        when 6 then ["description: \"#{text}: \\\"#{name}\\\" rows\""]
        when 7
          ["description: |", "  #{text}.", "  Rows are removed by a scheduled worker",
           "  once they are older than 30 days."]
        else
          ["description: >-", "  #{text},", "  written by the #{name} service and", "  read by the API."]
        end
      end

      def sharding(schema)
        return ["exempt_from_sharding: true"] if schema == "gitlab_shared" || schema.end_with?("clusterwide")

        case @rng.rand(6)
        when 0, 1, 2
          column, table = [%w[project_id projects], %w[namespace_id namespaces],
                           %w[organization_id organizations]].sample(random: @rng)
          ["sharding_key:", "  #{column}: #{table}"]
        when 3
          ["desired_sharding_key:", "  project_id:", "    references: projects", "    backfill_via:",
           "      parent:", "        foreign_key: build_id", "        table: p_ci_builds",
           "        sharding_key: project_id", "        belongs_to: build",
           "desired_sharding_key_migration_job_name: BackfillProjectId"]
        when 4
          ["sharding_key_issue_url: https://gitlab.com/gitlab-org/gitlab/-/issues/#{@rng.rand(400_000..500_000)}"]
        else
          ["allow_cross_foreign_keys:", "- gitlab_main_clusterwide"]
        end
      end

      def milestone
        major = @rng.rand(11..17)
        "#{major}.#{@rng.rand(0..11)}"
      end

      def camelize(text)
        text.split("_").map(&:capitalize).join
      end
    end

    # Writes a GitLab-shaped db/docs directory: one file per table with every key GitLab's
    # db/docs/*.yml files carry (classes, feature_categories, description, introduced_by_url,
    # milestone, gitlab_schema, sharding keys, table_size, ...), plus views/, deleted_tables/,
    # deleted_views/ and a batched_background_migrations/ folder that is not tables.
    # Deterministic: the same seed writes the same bytes.
    class DocsGenerator
      include DocsContent

      Entry = Struct.new(:kind, :name, :schema, :path, keyword_init: true)

      # Writes into a fresh temporary directory, yields (dir, entries) and removes it.
      def self.with_docs_dir(**options)
        Dir.mktmpdir("schema_fence_docs") do |tmp|
          dir = File.join(tmp, "db", "docs")
          entries = new(**options).write(dir)
          yield dir, entries
        end
      end

      def initialize(tables: 1_200, views: 12, deleted_tables: 20, deleted_views: 3, seed: 42)
        @counts = { table: tables, view: views, deleted_table: deleted_tables, deleted_view: deleted_views }
        @rng = Random.new(seed)
        @used = {}
      end

      # @return [Array<Entry>] what each written file names, for checking a loaded dictionary
      def write(dir)
        FileUtils.mkdir_p(dir)
        entries = []
        { table: dir, view: "#{dir}/views", deleted_table: "#{dir}/deleted_tables",
          deleted_view: "#{dir}/deleted_views" }.each do |kind, sub|
          FileUtils.mkdir_p(sub)
          @counts.fetch(kind).times do
            name, area = unique_name(kind)
            schema = schema_for(area)
            path = File.join(sub, "#{name}.yml")
            File.write(path, document(kind, name, area, schema))
            entries << Entry.new(kind:, name:, schema:, path:)
          end
        end
        write_batched_background_migrations(dir)
        entries
      end

      private

      def unique_name(kind)
        loop do
          area = AREAS.keys.sample(random: @rng)
          parts = [area]
          parts << QUALIFIERS.sample(random: @rng) if @rng.rand < 0.35
          parts << NOUNS.sample(random: @rng)
          parts << "v#{@rng.rand(2..4)}" if @rng.rand < 0.03
          parts.unshift("postgres") if kind.to_s.end_with?("view") && @rng.rand < 0.5
          name = parts.join("_")
          next if @used.key?(name)
          # A deleted `ci_x` whose live parent `p_ci_x` exists resolves to the parent (rule 5).
          next if kind.to_s.start_with?("deleted") && @used.key?("p_#{name}")

          @used[name] = true
          return [name, area]
        end
      end

      def schema_for(area)
        fixed = AREAS.fetch(area)[0]
        return fixed if fixed && @rng.rand < 0.9

        total = SCHEMAS.values.sum
        pick = @rng.rand(total)
        SCHEMAS.each do |schema, weight|
          return schema if (pick -= weight).negative?
        end
      end

      # Not tables: Dictionary.load must not read these (and the baseline does not either).
      def write_batched_background_migrations(dir)
        sub = File.join(dir, "batched_background_migrations")
        FileUtils.mkdir_p(sub)
        3.times do |i|
          File.write(File.join(sub, "backfill_project_id_#{i}.yml"), <<~YAML)
            ---
            migration_job_name: BackfillProjectId#{i}
            description: Backfills sharding key
            feature_category: database
            introduced_by_url: https://gitlab.com/gitlab-org/gitlab/-/merge_requests/#{140_000 + i}
            milestone: '16.#{i}'
            queued_migration_version: 2024010112000#{i}
            finalized_by: # version of the migration that finalized this BBM
          YAML
        end
      end
    end
  end
end
