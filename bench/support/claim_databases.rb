# frozen_string_literal: true

require_relative "gitlab_fixtures"

module SchemaFence
  module Bench
    # The claim benches' databases: 8 executable migrations (8 ci tables of 300,000 keys, batches
    # of 10, no interval), once with `public.schema_fence_claim` (the one-statement claim) and
    # once without it (the claim statement by statement, as a database installed before it).
    module ClaimDatabases
      TABLES = %w[ci_builds ci_pipelines ci_stages ci_job_artifacts ci_runners ci_variables ci_triggers
                  ci_sources_pipelines].freeze
      PATHS = { "one statement" => "bench_claims", "statement by statement" => "bench_claims_steps" }.freeze

      module_function

      def prepare(cluster, name)
        url = cluster.create_database(name)
        SchemaFence::Install.up(url, name: "ci", serves: ["ci"])
        dictionary = GitlabFixtures.dictionary
        PG.connect(url) do |c|
          TABLES.each do |table|
            c.exec("CREATE TABLE #{c.quote_ident(table)} (id bigint PRIMARY KEY); " \
                   "INSERT INTO #{c.quote_ident(table)} SELECT generate_series(1, 300000)")
            # Batches of 10 keys over 300,000: enough that no migration runs out (checked at the end).
            SchemaFence::Store.queue(url, dictionary:, job_class_name: "Noop#{table}", table_name: table,
                                          column_name: "id", restriction: "gitlab_ci", job_interval: 0,
                                          batch_size: 10, sub_batch_size: 10, pause_ms: 0)
          end
          c.exec("VACUUM ANALYZE")
        end
        url
      end

      # PATHS' names to their URLs.
      def prepare_both(cluster)
        urls = PATHS.transform_values { |name| prepare(cluster, name) }
        PG.connect(urls["statement by statement"]) { |c| c.exec("DROP FUNCTION public.schema_fence_claim") }
        urls
      end

      # Raises unless every migration is still running: none ran out of keys.
      def check_all_executable(url)
        left = PG.connect(url) { |c| c.exec("SELECT count(*) FROM batched_background_migrations WHERE status <> 1") }
        raise "a migration ran out of keys: fewer than 8 were executable" unless left.getvalue(0, 0).to_i.zero?
      end
    end
  end
end
