# frozen_string_literal: true

require "active_record"

class SplitScenario
  # The scenario's Ruby job: adds one to `done` of every key of each sub-batch, on the worker's
  # ActiveRecord connection, with the statement guard on.
  class IncrementRows < SchemaFence::BatchedMigrationJob
    def perform
      each_sub_batch { |sub_batch| sub_batch.update_all("done = done + 1") }
    end
  end
end
