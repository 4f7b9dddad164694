# frozen_string_literal: true

module SchemaFence
  # The tracking rows, through the core (SchemaFence::Store's native methods take one Hash of
  # options by name and refuse a key they do not know).
  module Store
    # What queueing a migration did: +outcome+ is +:queued+, +:already_queued+ (the same key was
    # queued before) or +:finished+ (an empty table: nothing to do); +gitlab_schema+ is the tag.
    Queued = Struct.new(:outcome, :id, :gitlab_schema, keyword_init: true)

    class << self
      # Queues a migration on +connection+ with the key and options of
      # {MigrationHelpers#queue_batched_background_migration} (+restriction+ is the migration's
      # +restrict_gitlab_migration+ schema; +options+: job_interval, batch_size, sub_batch_size,
      # batch_min_value, batch_max_value, max_batch_size, pause_ms, queued_migration_version,
      # batch_class_name, gitlab_schema, gitlab_interval).
      #
      # @return [Queued]
      def queue(connection, job_class_name:, table_name:, column_name:, job_arguments: [], restriction: nil,
                dictionary: SchemaFence.dictionary, **options)
        outcome, id, tag = _queue(Connection.native(connection), dictionary,
                                  key(job_class_name, table_name, column_name, job_arguments, restriction)
                                    .merge(options))
        Queued.new(outcome:, id:, gitlab_schema: tag)
      end

      # Deletes the migration queued with this key and its jobs.
      # @return [Integer] how many were deleted (0 or 1)
      def delete(connection, job_class_name:, table_name:, column_name:, job_arguments: [], restriction: nil,
                 dictionary: SchemaFence.dictionary)
        _delete(Connection.native(connection), dictionary,
                key(job_class_name, table_name, column_name, job_arguments, restriction))
      end

      # @return [Integer, nil] the id of the migration queued with this key, tagged as the
      #   restriction dictates
      def find_id(connection, job_class_name:, table_name:, column_name:, job_arguments: [], restriction: nil,
                  dictionary: SchemaFence.dictionary)
        _find_id(Connection.native(connection), dictionary,
                 key(job_class_name, table_name, column_name, job_arguments, restriction))
      end

      private

      def key(job_class_name, table_name, column_name, job_arguments, restriction)
        { job_class_name: job_class_name.to_s, table_name: table_name.to_s, column_name: column_name.to_s,
          job_arguments: JobArguments.to_json_array(Array(job_arguments)), restriction: restriction&.to_s }
      end
    end
  end
end
