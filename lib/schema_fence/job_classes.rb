# frozen_string_literal: true

module SchemaFence
  # Finds the Ruby job class of a migration's job_class_name (in {Configuration#job_namespace}
  # when one is set) and checks, when a migration is queued, what GitLab's helpers check.
  module JobClasses
    module_function

    # @param name [String] the job_class_name
    # @return [Class, nil] the BatchedMigrationJob subclass, nil when there is none by that name
    # @raise [Error] when the name is a constant that is not a BatchedMigrationJob
    def find(name)
      qualified = qualified(name)
      klass = Object.const_get(qualified)
      return klass if klass.is_a?(Class) && klass < BatchedMigrationJob

      raise Error, "#{qualified} is not a SchemaFence::BatchedMigrationJob"
    rescue NameError
      nil
    end

    # @return [String] the constant +name+ is looked up as
    def qualified(name)
      namespace = SchemaFence.configuration.job_namespace
      namespace ? "#{namespace}::#{name}" : name.to_s
    end

    # GitLab refuses to queue a job with the wrong number of arguments.
    #
    # @return [Array<String>, nil] the job class's +cursor+ columns: the migration is then queued
    #   cursor-batched over them, as GitLab's helper queues it
    # @raise [InvalidJobArgumentsError]
    def check_queueable!(name, job_arguments)
      klass = find(name)
      return unless klass

      if klass.job_arguments_count != job_arguments.size
        raise InvalidJobArgumentsError, "wrong number of job arguments for #{klass.name} (given #{job_arguments.size}, " \
                                        "expected #{klass.job_arguments_count}: see its job_arguments)"
      end
      klass.cursor_columns
    end
  end
end
