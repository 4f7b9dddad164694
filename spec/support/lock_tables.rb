# frozen_string_literal: true

require "pg"

# Databases holding tables of every kind the write locks tell apart, for the lock specs: a gitlab_ci
# table, a gitlab_main one, a gitlab_shared and a gitlab_internal one, and a gitlab_ci partitioned
# table with a partition in GitLab's gitlab_partitions_dynamic schema, and a detached one beside it.
module LockTables
  module_function

  # A fresh database with those tables (three rows each), installed as +name+ serving +serves+.
  def database(prefix, name:, serves:)
    url = Clusters.fresh_database(prefix)
    PG.connect(url) do |c|
      c.exec(<<~SQL)
        CREATE TABLE ci_builds (id bigint PRIMARY KEY, value int NOT NULL DEFAULT 0);
        CREATE TABLE projects (id bigint PRIMARY KEY, value int NOT NULL DEFAULT 0);
        CREATE TABLE loose_foreign_keys_deleted_records (id bigint PRIMARY KEY, value int NOT NULL DEFAULT 0);
        CREATE TABLE ar_internal_metadata (key text PRIMARY KEY, value text);
        CREATE TABLE ci_builds_metadata (id bigint, partition_id bigint NOT NULL, value int NOT NULL DEFAULT 0)
          PARTITION BY LIST (partition_id);
        CREATE SCHEMA gitlab_partitions_dynamic;
        CREATE TABLE gitlab_partitions_dynamic.ci_builds_metadata_100 PARTITION OF ci_builds_metadata FOR VALUES IN (100);
        CREATE TABLE gitlab_partitions_dynamic.ci_builds_metadata_99 (id bigint, partition_id bigint, value int DEFAULT 0);
        INSERT INTO ci_builds (id) VALUES (1), (2), (3);
        INSERT INTO projects (id) VALUES (1), (2), (3);
        INSERT INTO loose_foreign_keys_deleted_records (id) VALUES (1), (2), (3);
        INSERT INTO ar_internal_metadata VALUES ('environment', 'test');
        INSERT INTO ci_builds_metadata (id, partition_id) VALUES (1, 100), (2, 100), (3, 100);
      SQL
    end
    SchemaFence::Install.up(url, name:, serves:)
    url
  end

  # Runs +sql+ on +url+; nil when it went through, else the server's message.
  def refusal(url, sql)
    PG.connect(url) { |c| c.exec(sql) }
    nil
  rescue PG::Error => e
    e.message
  end

  # The rows information_schema.triggers has for +table+ (one per event; TRUNCATE is not listed).
  def trigger_rows(url, table)
    PG.connect(url) do |c|
      c.exec_params("SELECT count(*) FROM information_schema.triggers WHERE event_object_table = $1", [table])
       .getvalue(0, 0).to_i
    end
  end
end
