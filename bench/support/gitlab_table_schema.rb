# frozen_string_literal: true

require "yaml"

module SchemaFence
  module Bench
    # GitLab's Gitlab::Database::GitlabSchema.table_schema in plain Ruby, with Hash lookups as
    # GitLab does, under the rules of docs/architecture.md section 4 (GitLab's, with exact match tried
    # before the partition suffix is stripped). It is the baseline of bench/resolve_bench.rb.
    class GitlabTableSchema
      PARTITION_SUFFIX = /\A(.+)_\d+\z/m

      # Reads the same sources as SchemaFence::Dictionary.load: flat map files
      # (`table: :gitlab_main`) and db/docs directories.
      def self.load(*paths)
        tables = {}
        deleted = {}
        paths.each do |path|
          if File.directory?(path)
            read_docs(path, tables, deleted)
          else
            YAML.safe_load_file(path, permitted_classes: [Symbol]).each do |table, schema|
              tables[table.to_s] = schema.to_s.delete_prefix(":").to_sym
            end
          end
        end
        new(tables:, deleted:)
      end

      def self.read_docs(dir, tables, deleted)
        { "" => tables, "views/" => tables, "deleted_tables/" => deleted, "deleted_views/" => deleted }
          .each do |sub, map|
            Dir["#{dir}/#{sub}*.{yml,yaml}"].each do |file|
              doc = YAML.safe_load_file(file)
              map[doc["table_name"] || doc["view_name"]] = doc["gitlab_schema"].to_sym
            end
          end
      end

      def initialize(tables:, deleted: {})
        @tables = tables.freeze
        @deleted = deleted.freeze
        known = (tables.values + deleted.values + %i[gitlab_internal gitlab_shared]).uniq
        # Like GitLab's IMPLICIT_GITLAB_SCHEMAS: longer prefixes first, so
        # `_test_gitlab_main_cell_` is not read as `_test_gitlab_main_`.
        @test_prefixes = known.select { |s| s.start_with?("gitlab_") }
                              .map { |s| ["_test_#{s}_", s] }
                              .sort_by { |prefix, _| -prefix.size }
                              .freeze
      end

      # One method, in rule order, as GitLab writes it.
      # rubocop:disable Metrics/CyclomaticComplexity, Metrics/PerceivedComplexity
      # @return [Symbol, nil]
      def table_schema(name)
        # 1. An optional PostgreSQL schema prefix: `public.ci_builds`.
        schema_name, table_name = name.split(".", 2)
        unless table_name
          table_name = schema_name || ""
          schema_name = nil
        end

        # 2. Catalogs.
        if schema_name == "information_schema" || schema_name&.start_with?("pg_") ||
           table_name.start_with?("pg_")
          return :gitlab_internal
        end

        # 3. Tables and views that are properly mapped.
        if (gitlab_schema = @tables[table_name])
          return gitlab_schema
        end

        # 4. A partition number of the form `loose_foreign_keys_deleted_records_1`.
        stripped = PARTITION_SUFFIX.match(table_name)&.[](1)
        if stripped && (gitlab_schema = @tables[stripped])
          return gitlab_schema
        end

        # 5. Partitions that belong to the CI domain: `ci_x` of `p_ci_x`.
        if table_name.start_with?("ci_") &&
           (gitlab_schema = @tables["p_#{table_name}"] || (stripped && @tables["p_#{stripped}"]))
          return gitlab_schema
        end

        # 6. Tables and views that are deleted, but we still need to reference them.
        if (gitlab_schema = @deleted[table_name] || (stripped && @deleted[stripped]))
          return gitlab_schema
        end

        # 7. Test tables.
        if table_name.start_with?("_test_")
          @test_prefixes.each do |prefix, schema|
            return schema if table_name.start_with?(prefix)
          end
          return :gitlab_shared
        end

        nil
      end
      # rubocop:enable Metrics/CyclomaticComplexity, Metrics/PerceivedComplexity
    end
  end
end
