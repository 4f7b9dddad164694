# frozen_string_literal: true

require "active_record"

# GitLab's model of the tracking table and the scopes its fetch chains, the baseline of the fetch
# benches (bench/fetch_bench.rb, bench/worker_bench.rb).
class TrackedMigration < ActiveRecord::Base
  self.table_name = "batched_background_migrations"
  self.inheritance_column = :_type_disabled
  scope :for_gitlab_schema, ->(schemas) { where(gitlab_schema: schemas) }
  scope :executable, -> { where(status: [1, 5]).where("on_hold_until IS NULL OR on_hold_until < NOW()") }
  scope :queue_order, -> { order(:id) }
end
