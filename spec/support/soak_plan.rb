# frozen_string_literal: true

# What the soak (spec/soak_spec.rb) migrates: real GitLab tables of each gitlab_schema, half with
# Ruby jobs and half with SQL jobs. Loaded by the spec and by the soak's Sidekiq processes
# (spec/fixtures/soak_app/boot.rb).
module SoakPlan
  # table => [gitlab_schema, kind of job]
  TABLES = {
    "projects" => %i[gitlab_main sql],
    "namespaces" => %i[gitlab_main ruby],
    "ci_builds" => %i[gitlab_ci ruby],
    "ci_pipelines" => %i[gitlab_ci sql],
    "loose_foreign_keys_deleted_records" => %i[gitlab_shared ruby],
    "detached_partitions" => %i[gitlab_shared sql],
    "postgres_async_indexes" => %i[gitlab_shared ruby]
  }.freeze

  RUBY_JOB = "SoakIncrement"

  module_function

  def job_class_name(table)
    _, kind = TABLES.fetch(table)
    kind == :ruby ? RUBY_JOB : "SoakSql_#{table}"
  end

  # Registers the SQL jobs: each adds one to `done` of the keys of its sub-batch, so the data
  # says how often each key was processed.
  def register_sql_jobs
    TABLES.each do |table, (_, kind)|
      next unless kind == :sql

      SchemaFence.sql_job(job_class_name(table), "UPDATE #{table} SET done = done + 1 WHERE id BETWEEN $1 AND $2")
    end
  end

  # The databases that own each table's data after the split: main's tables on main, ci's on ci,
  # shared tables on both.
  def owners(table)
    case TABLES.fetch(table).first
    when :gitlab_main then %w[main]
    when :gitlab_ci then %w[ci]
    else %w[main ci]
    end
  end
end
