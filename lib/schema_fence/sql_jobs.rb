# frozen_string_literal: true

# See lib/schema_fence.rb.
module SchemaFence
  # SQL jobs: a job class name mapped to one statement with $1/$2 key bounds, run entirely in
  # Rust (no Ruby per batch):
  #
  #   SchemaFence.sql_job "BackfillCiBuildsDone",
  #                       "UPDATE ci_builds SET done = true WHERE id BETWEEN $1 AND $2"
  module SqlJobs
    @statements = {}
    @lock = Mutex.new

    class << self
      # @param job_class_name [String] the name queued as the job class
      # @param statement [String] SQL with $1 and $2 for the first and last key of a sub-batch
      # @raise [InvalidArgumentError] when the statement lacks $1 or $2
      def register(job_class_name, statement)
        unless statement.include?("$1") && statement.include?("$2")
          raise InvalidArgumentError, "SQL job #{job_class_name}: the statement must use $1 and $2 for the " \
                                      "first and last key of each sub-batch"
        end

        @lock.synchronize { @statements[job_class_name.to_s] = statement.dup.freeze }
      end

      # @return [String, nil]
      def [](job_class_name)
        @lock.synchronize { @statements[job_class_name.to_s] }
      end
    end
  end

  class << self
    # Registers a SQL job; see {SqlJobs}.
    def sql_job(job_class_name, statement)
      SqlJobs.register(job_class_name, statement)
    end
  end
end
