# frozen_string_literal: true

module SchemaFence
  # The root of every error schema_fence raises. The native core raises the subclass whose name
  # is its error variant's name plus "Error" (every one of {ERROR_KINDS}, resolved when the
  # extension loads), with the fields below set where the error has them.
  class Error < StandardError
    # @return [String, nil] the SQLSTATE of the PostgreSQL error behind it (e.g. "57014")
    attr_reader :sqlstate
    # @return [String, nil] the table it is about
    attr_reader :table
    # @return [String, nil] the gitlab_schema it is about (the table's, where known)
    attr_reader :gitlab_schema
    # @return [String, nil] the logical database (main, ci, ...) it is about
    attr_reader :database
  end

  # A dictionary or topology file could not be parsed; the message starts with "path:line:column".
  class MalformedYamlError < Error; end

  # Two dictionary sources give one table two different gitlab_schemas; the message names both.
  class ConflictingSchemaError < Error; end

  # A table names a gitlab_schema that the schema definitions (db/gitlab_schemas) do not define.
  class UndefinedSchemaError < Error; end

  # A dictionary entry with a blank table name or an empty, blank, ~ or malformed gitlab_schema;
  # the message starts with "path:line:".
  class InvalidEntryError < Error; end

  # A db/docs, schema definition or database connection file lacks a required key.
  class MissingKeyError < Error; end

  # No resolution rule gives the table a gitlab_schema; the message names the sources searched.
  class UnknownTableError < Error; end

  # A dictionary or topology path could not be read.
  class SourceReadError < Error; end

  # A path is neither a flat map file, a db/docs directory nor a schema definitions directory.
  class UnrecognizedSourceError < Error; end

  # The database connections do not form a valid topology (duplicate names, bad fallbacks).
  class TopologyError < Error; end

  # A database name that the topology does not define.
  class UnknownDatabaseError < Error; end
end

module SchemaFence
  # PostgreSQL refused a statement of the tracking store; the message is the server's.
  class DatabaseError < Error; end

  # A native call was interrupted (Thread#raise, Timeout, Ctrl-C): its query was cancelled on the
  # server and its waits ended.
  class InterruptedError < Error; end

  # The identity was stamped in another physical database than the one reached (a restore into
  # another cluster, a CREATE DATABASE ... TEMPLATE copy); the message names both. Adopt a
  # deliberate copy with SchemaFence::Identity.adopt (rake schema_fence:identity:adopt).
  class IdentityMismatchError < Error; end

  # The database has no identity row yet: install schema_fence on it first.
  class IdentityMissingError < Error; end

  # Installing for a database that this physical database's identity does not serve.
  class IdentityConflictError < Error; end

  # An argument is out of range (batch sizes, intervals, key bounds, ...); the message names it.
  class InvalidArgumentError < Error; end

  # A table or column name PostgreSQL would truncate or cannot hold.
  class InvalidIdentifierError < Error; end

  # queue_batched_background_migration in a migration without restrict_gitlab_migration.
  class MissingSchemaRestrictionError < Error; end

  # A batched background migration of a gitlab_internal table.
  class InternalSchemaError < Error; end

  # The table's gitlab_schema is not the migration's restriction; the message names both.
  class SchemaMismatchError < Error; end

  # The upgrade of untagged tracking rows met rows whose table does not resolve (listed).
  class UnresolvedRowsError < Error; end

  # The table to migrate does not exist on this database.
  class TableNotFoundError < Error; end

  # The batching column does not exist on the table.
  class ColumnNotFoundError < Error; end

  # Job arguments that cannot be stored as JSON.
  class InvalidJobArgumentsError < InvalidArgumentError; end
end

module SchemaFence
  # A worker's connection reached a database whose identity does not serve the worker's
  # database (e.g. a ci connection still pointed at main after the split). Nothing was run.
  class MisroutedConnectionError < Error; end

  # A Ruby batch's job connection reaches another physical database than the one its batch was
  # claimed on (another identity, cluster, database or epoch). The job was not run; the batch is
  # recorded as failed.
  class JobConnectionMismatchError < Error; end

  # The identity epoch changed between a fetch and the claim (a cutover): fetch again.
  class EpochChangedError < Error; end

  # The connection to PostgreSQL was lost (a restart or failover) and could not be reopened.
  class ConnectionLostError < Error; end

  # The core could not open a connection (refused, a server shutting down, authentication, TLS:
  # the message names the target, the sslmode in effect and the server's or the TLS library's
  # reason). A ConnectionLostError, so code retrying lost connections retries this too.
  class ConnectionError < ConnectionLostError; end

  # ensure_batched_background_migration_is_finished could not finish the migration; the message
  # says which one and the command to finish it.
  class MigrationNotFinishedError < Error; end

  # The statement guard refused a statement before it was sent: it reads a table outside the
  # connection's allowed gitlab_schemas, writes one outside the migration's gitlab_schema
  # (gitlab_shared and gitlab_internal aside), or names a table the dictionary does not know.
  class CrossDatabaseAccessError < Error; end

  # The statement guard refused a statement of a batch that is not DML: a DO block, DDL of a
  # function, procedure, trigger, rule or view, or SET / RESET / set_config of search_path, role,
  # session_replication_role, standard_conforming_strings or a schema_fence.* setting. It is not
  # sent.
  class ForbiddenStatementError < CrossDatabaseAccessError; end

  # The statement guard could not parse a statement with PostgreSQL's parser, so did not send it.
  class GuardParseError < Error; end
end

module SchemaFence
  # A bounded wait of the cutover ran out (drain, catch-up, promotion); the source stays paused.
  class CutoverTimeoutError < Error; end

  # A cutover step was asked for before the steps it depends on.
  class CutoverOrderError < Error; end

  # rollback after the promotion: the split can only be finished now.
  class CutoverPastPromotionError < Error; end

  # The databases are not in the state the cutover step needs (e.g. a replica promoted too early).
  class CutoverStateError < Error; end

  # The cutover's target is not a streaming replica of its source holding the same identity (a
  # replica of another primary, a primary, another copy), or a rerun names another target than the
  # logged cutover; the message names every difference. Nothing was changed.
  class CutoverTargetError < Error; end

  # A rollback after the promotion of a cutover that has no reverse replication (run with
  # reversible: false, or dropped): it would lose the writes the target took. Nothing was changed.
  class CutoverNotReversibleError < Error; end

  # A reversible cutover's requirements are missing (wal_level = logical on the target, slots and
  # WAL senders, a primary key or replica identity on every moving table); each is named.
  # Nothing was changed.
  class CutoverRequirementsError < Error; end

  # The cutover could not connect to the source or the target.
  class CutoverConnectionError < Error; end

  # The cutover's source or target URL reaches PostgreSQL through a connection pooler (PgBouncer
  # in transaction pooling): refused before anything is read or changed; the message names the
  # URL and asks for a direct connection to the server.
  class CutoverThroughPoolerError < CutoverConnectionError; end
end
