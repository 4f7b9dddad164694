# frozen_string_literal: true

require_relative "schema_fence/version"
require_relative "schema_fence/errors"
require_relative "schema_fence/native"
require_relative "schema_fence/dictionary"
require_relative "schema_fence/topology"
require_relative "schema_fence/guard"
require_relative "schema_fence/configuration"
require_relative "schema_fence/instrumentation"
require_relative "schema_fence/log_subscriber"
require_relative "schema_fence/connection"
require_relative "schema_fence/identity"
require_relative "schema_fence/rails_configs"
require_relative "schema_fence/install"
require_relative "schema_fence/retag"
require_relative "schema_fence/identity_stamp"
require_relative "schema_fence/job_arguments"
require_relative "schema_fence/migrations"
require_relative "schema_fence/finalize_helpers"
require_relative "schema_fence/migration_helpers"
require_relative "schema_fence/runner"
require_relative "schema_fence/health"
require_relative "schema_fence/sql_jobs"
require_relative "schema_fence/job_macros"
require_relative "schema_fence/sub_batches"
require_relative "schema_fence/batched_migration_job"
require_relative "schema_fence/job_classes"
require_relative "schema_fence/guard_hook"
require_relative "schema_fence/worker_record"
require_relative "schema_fence/job_connection"
require_relative "schema_fence/worker"
require_relative "schema_fence/status"
require_relative "schema_fence/operations"
require_relative "schema_fence/cutover"
require_relative "schema_fence/metrics"
require_relative "schema_fence/dashboard"
require_relative "schema_fence/railtie" if defined?(Rails::Railtie)

# Keeps batched background migrations on the database that owns their data while a Rails app
# splits one PostgreSQL database into several. See README.md and DESIGN.md.
module SchemaFence
end
